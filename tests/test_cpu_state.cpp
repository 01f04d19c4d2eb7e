// Sequence state: save -> load -> continue is bit-identical to never stopping; forks share full
// blocks and continue independently; cancel stops within one chunk; every corruption of a state
// file is detected with its own error; a process killed while saving leaves the old file intact.
#include <QDir>
#include <QFile>
#include <QProcess>
#include <QRandomGenerator>
#include <QtTest>

#include <cstring>
#include <filesystem>

#include "cpu/cpu_engine.h"
#include "engine_test_support.h"
#include "hash.h"
#include "state_file.h"

using namespace quire;
using namespace quire::test;

namespace {
struct Section {
    uint32_t kind;
    int64_t offset, size;
};
std::vector<Section> section_table(const QByteArray& f) {
    uint32_t count;
    std::memcpy(&count, f.constData() + 12, 4);
    std::vector<Section> out;
    for (uint32_t i = 0; i < count; ++i) {
        const char* e = f.constData() + 64 + 48 * i;
        Section s{};
        std::memcpy(&s.kind, e, 4);
        std::memcpy(&s.offset, e + 16, 8);
        std::memcpy(&s.size, e + 24, 8);
        out.push_back(s);
    }
    return out;
}
}  // namespace

class TestCpuState : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    std::string path(const char* name) { return tmp_.path().toStdString() + "/" + name; }

private slots:
    void save_load_continue_is_bit_identical_data() {
        QTest::addColumn<int>("precision");
        QTest::newRow("bf16") << static_cast<int>(Precision::bf16);
        QTest::newRow("fp32") << static_cast<int>(Precision::fp32);
    }
    void save_load_continue_is_bit_identical() {
        QFETCH(int, precision);
        auto m = load_model(tiny_model("tiny-a"));
        const auto tokens = random_tokens(9000, m->config().vocab_size, 5);
        const std::vector<int64_t> positions = {8400, 8420, 8500, 8999};
        auto engine = make_engine(m, static_cast<Precision>(precision));
        auto seq = engine->new_sequence();
        const std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + 8400);
        run_sequence(*engine, *seq, prefix, 1000, 8400, {});
        QVERIFY(engine->save_state(*seq, path("prefix.state")).is_ok());
        // Never stopping: continue the same sequence object.
        const Rows straight = run_sequence(*engine, *seq, tokens, 300, 8420, positions);
        // Stopping: a new engine instance loads the file and continues the same way.
        auto engine2 = make_engine(m, static_cast<Precision>(precision));
        auto loaded = engine2->load_state(path("prefix.state"), &prefix);
        QVERIFY2(loaded.is_ok(), loaded.status().message().c_str());
        QCOMPARE(loaded.value()->length(), int64_t(8400));
        const Rows resumed = run_sequence(*engine2, *loaded.value(), tokens, 300, 8420, positions);
        for (int64_t p : positions) QCOMPARE(max_abs_diff(straight.at(p), resumed.at(p)), 0.0f);
    }

    // A chat's state as a delta on its prefix (a prefix past the sparse boundary, so C1/C2 deltas
    // are partial windows): loaded onto the prefix it continues exactly like the whole state it
    // replaces, and it holds only the chat's own rows.
    void delta_state_loads_onto_its_prefix_bit_identically() {
        auto m = load_model(tiny_model("tiny-a"));
        const auto tokens = random_tokens(8700, m->config().vocab_size, 9);
        const std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + 8300), chat(tokens.begin(), tokens.begin() + 8413);
        const std::vector<int64_t> positions = {8413, 8500, 8699};
        auto engine = make_engine(m, Precision::bf16);
        auto root = engine->new_sequence();
        run_sequence(*engine, *root, prefix, 2048, 8300, {});
        auto seq = root->fork();
        run_sequence(*engine, *seq, chat, 64, 8413, {});
        QVERIFY(engine->save_state(*seq, path("whole.state")).is_ok());
        QVERIFY(engine->save_state(*seq, path("delta.state"), 8300).is_ok());
        const auto whole_bytes = std::filesystem::file_size(path("whole.state")), delta_bytes = std::filesystem::file_size(path("delta.state"));
        QVERIFY2(delta_bytes * 4 < whole_bytes, qPrintable(QString("delta %1 bytes, whole %2").arg(delta_bytes).arg(whole_bytes)));
        // The size is known before writing (the state budget weighs it).
        QCOMPARE(engine->state_file_bytes(*seq), static_cast<int64_t>(whole_bytes));
        QCOMPARE(engine->state_file_bytes(*seq, 8300), static_cast<int64_t>(delta_bytes));
        auto fp32 = make_engine(m, Precision::fp32);
        auto fp32_seq = fp32->new_sequence();
        run_sequence(*fp32, *fp32_seq, std::vector<int32_t>(tokens.begin(), tokens.begin() + 301), 128, 301, {});
        QVERIFY(fp32->save_state(*fp32_seq, path("fp32.state")).is_ok());
        QCOMPARE(fp32->state_file_bytes(*fp32_seq), static_cast<int64_t>(std::filesystem::file_size(path("fp32.state"))));

        auto engine2 = make_engine(m, Precision::bf16);
        auto whole = engine2->load_state(path("whole.state"), &chat);
        QVERIFY2(whole.is_ok(), whole.status().message().c_str());
        // The delta needs its prefix: none, or another one, is refused with its own error.
        QCOMPARE(engine2->load_state(path("delta.state"), &chat).status().code(), ErrorCode::state_wrong_tokens);
        auto other = engine2->new_sequence();
        std::vector<int32_t> other_prefix = prefix;
        other_prefix[100] ^= 1;
        run_sequence(*engine2, *other, other_prefix, 4096, 8300, {});
        QCOMPARE(engine2->load_state(path("delta.state"), &chat, other.get()).status().code(), ErrorCode::state_wrong_tokens);
        // On its prefix, loaded in another engine from the prefix's own state file.
        QVERIFY(engine->save_state(*root, path("prefix.state")).is_ok());
        auto prefix_seq = engine2->load_state(path("prefix.state"), &prefix);
        QVERIFY2(prefix_seq.is_ok(), prefix_seq.status().message().c_str());
        auto delta = engine2->load_state(path("delta.state"), &chat, prefix_seq.value().get());
        QVERIFY2(delta.is_ok(), delta.status().message().c_str());
        QCOMPARE(delta.value()->tokens(), chat);
        QCOMPARE(delta.value()->sparse_from(), whole.value()->sparse_from());
        const Rows a = run_sequence(*engine2, *whole.value(), tokens, 128, 8650, positions);
        const Rows b = run_sequence(*engine2, *delta.value(), tokens, 128, 8650, positions);
        for (int64_t p : positions) QCOMPARE(max_abs_diff(a.at(p), b.at(p)), 0.0f);
        QCOMPARE(prefix_seq.value()->length(), int64_t(8300));  // the prefix itself is untouched
        // A damaged delta is refused like any state.
        QByteArray bytes = read_all(path("delta.state"));
        bytes[bytes.size() - 3] = static_cast<char>(bytes[bytes.size() - 3] ^ 0x40);
        write_all(path("bad-delta.state"), bytes);
        QCOMPARE(engine2->load_state(path("bad-delta.state"), &chat, prefix_seq.value().get()).status().code(), ErrorCode::state_bad_checksum);
    }

    // The model's fingerprint covers the weights' bytes, not only their headers: a state saved with
    // one set of weights is refused by the same folder with one weight byte changed.
    void changed_weights_do_not_reuse_a_state() {
        qputenv("XDG_CACHE_HOME", (tmp_.path() + "/cache").toUtf8());
        const QString dir = tmp_.path() + "/weights";
        QDir().mkpath(dir);
        for (const QFileInfo& f : QDir(QString::fromStdString(tiny_model("tiny-a"))).entryInfoList(QDir::Files))
            QVERIFY(QFile::copy(f.absoluteFilePath(), dir + "/" + f.fileName()));
        auto m = load_model(dir.toStdString());
        auto engine = make_engine(m, Precision::bf16);
        const auto tokens = random_tokens(300, m->config().vocab_size, 4);
        auto seq = engine->new_sequence();
        run_sequence(*engine, *seq, tokens, 0, 300, {});
        QVERIFY(engine->save_state(*seq, path("weights.state")).is_ok());
        QVERIFY(make_engine(load_model(dir.toStdString()), Precision::bf16)->load_state(path("weights.state"), &tokens).is_ok());
        // One byte near the end of a shard: tensor data, the header untouched.
        const QString shard = dir + "/model-00002-of-00002.safetensors";
        QFile f(shard);
        QVERIFY(f.open(QIODevice::ReadWrite));
        QVERIFY(f.seek(f.size() - 100));
        char b = 0;
        QVERIFY(f.getChar(&b));
        QVERIFY(f.seek(f.size() - 100));
        QVERIFY(f.putChar(static_cast<char>(b ^ 0x01)));
        f.close();
        auto changed = make_engine(load_model(dir.toStdString()), Precision::bf16);
        QCOMPARE(changed->load_state(path("weights.state"), &tokens).status().code(), ErrorCode::state_wrong_model);
    }

    void fork_shares_blocks_and_continues_independently() {
        auto m = load_model(tiny_model("tiny-a"));
        auto engine = make_engine(m, Precision::bf16);
        const auto prefix = random_tokens(2000, m->config().vocab_size, 11);
        const auto x = random_tokens(300, m->config().vocab_size, 12);
        const auto y = random_tokens(300, m->config().vocab_size, 13);
        auto join = [&](const std::vector<int32_t>& tail) {
            std::vector<int32_t> all = prefix;
            all.insert(all.end(), tail.begin(), tail.end());
            return all;
        };
        auto parent = engine->new_sequence();
        run_sequence(*engine, *parent, prefix, 0, 2000, {});
        auto child = parent->fork();
        const auto& pc = static_cast<const cpu::CpuSequence&>(*parent);
        const auto& cc = static_cast<const cpu::CpuSequence&>(*child);
        QCOMPARE(pc.sparse_[0].k.shared_pages_with(cc.sparse_[0].k), int64_t(2000 / 64));  // full blocks shared
        QCOMPARE(pc.sparse_[0].k.page_count(), int64_t(2000 / 64 + 1));                     // partial block copied
        const Rows px = run_sequence(*engine, *parent, join(x), 0, 2100, {2100, 2299});
        const Rows cy = run_sequence(*engine, *child, join(y), 0, 2100, {2100, 2299});
        auto fresh_x = engine->new_sequence();
        run_sequence(*engine, *fresh_x, prefix, 0, 2000, {});
        const Rows fx = run_sequence(*engine, *fresh_x, join(x), 0, 2100, {2100, 2299});
        auto fresh_y = engine->new_sequence();
        run_sequence(*engine, *fresh_y, prefix, 0, 2000, {});
        const Rows fy = run_sequence(*engine, *fresh_y, join(y), 0, 2100, {2100, 2299});
        for (int64_t p : {2100, 2299}) {
            QCOMPARE(max_abs_diff(px.at(p), fx.at(p)), 0.0f);
            QCOMPARE(max_abs_diff(cy.at(p), fy.at(p)), 0.0f);
        }
        QCOMPARE(parent->tokens(), join(x));
        QCOMPARE(child->tokens(), join(y));
    }

    void cancel_stops_within_one_chunk() {
        auto m = load_model(tiny_model("tiny-a"));
        auto engine = make_engine(m, Precision::bf16);
        const auto tokens = random_tokens(3000, m->config().vocab_size, 21);
        std::atomic<bool> cancel{false};
        std::vector<int64_t> progress;
        PrefillRequest req;
        req.tokens = tokens;
        req.chunk = 256;
        req.cancel = &cancel;
        req.on_progress = [&](const PrefillProgress& p) {
            progress.push_back(p.done);
            if (p.done >= 512) cancel = true;  // asked to stop while chunk 2 finishes
        };
        auto seq = engine->new_sequence();
        const Status st = engine->prefill(*seq, req, nullptr);
        QCOMPARE(st.code(), ErrorCode::cancelled);
        QCOMPARE(seq->length(), int64_t(512));
        QCOMPARE(progress, (std::vector<int64_t>{256, 512}));
        QCOMPARE(engine->counters().prefilled_tokens, int64_t(512));
        // The cancelled sequence is a valid prefix: finishing it equals an uninterrupted run.
        const Rows resumed = run_sequence(*engine, *seq, tokens, 256, 3000, {2999});
        const Rows straight = run_fresh(*engine, tokens, 256, 3000, {2999});
        QCOMPARE(max_abs_diff(resumed.at(2999), straight.at(2999)), 0.0f);
    }

    void corruption_is_detected_with_its_own_error() {
        auto m = load_model(tiny_model("tiny-a"));
        auto engine = make_engine(m, Precision::bf16);
        const auto tokens = random_tokens(700, m->config().vocab_size, 31);
        auto seq = engine->new_sequence();
        run_sequence(*engine, *seq, tokens, 0, 700, {});
        const std::string good = path("good.state");
        QVERIFY(engine->save_state(*seq, good).is_ok());
        const QByteArray original = read_all(good);
        const std::string bad = path("bad.state");
        auto load_bytes = [&](const QByteArray& bytes, const std::vector<int32_t>* expect = nullptr) {
            write_all(bad, bytes);
            return engine->load_state(bad, expect ? expect : &tokens).status();
        };
        QVERIFY(load_bytes(original).is_ok());

        // A bit flip inside every section.
        const auto sections = section_table(original);
        QCOMPARE(sections.size(), size_t(1 + 2 + 2 * 4));  // tokens, 2 Lightning, 2 sparse x (K,V,C1,C2)
        for (const auto& s : sections) {
            QByteArray b = original;
            b[static_cast<qsizetype>(s.offset + s.size / 2)] = static_cast<char>(b[static_cast<qsizetype>(s.offset + s.size / 2)] ^ 0x10);
            const Status st = load_bytes(b);
            QCOMPARE(st.code(), ErrorCode::state_bad_checksum);
            QVERIFY2(st.message().find(section_kind_name(static_cast<SectionKind>(s.kind))) != std::string::npos, st.message().c_str());
        }
        // Header fields and the section table.
        for (int offset : {16, 24, 40, 50, 64 + 20, 64 + 48 * 3 + 4}) {
            QByteArray b = original;
            b[offset] = static_cast<char>(b[offset] ^ 0x01);
            QCOMPARE(load_bytes(b).code(), ErrorCode::state_bad_checksum);
        }
        QByteArray magic = original;
        magic[0] = 'X';
        QCOMPARE(load_bytes(magic).code(), ErrorCode::state_bad_magic);
        // Truncation anywhere.
        for (qsizetype keep : {qsizetype(4), qsizetype(40), qsizetype(100), original.size() / 2, original.size() - 1}) {
            const ErrorCode code = load_bytes(original.left(keep)).code();
            QVERIFY2(code == (keep < 8 ? ErrorCode::state_bad_magic : ErrorCode::state_truncated), qPrintable(QString::number(keep)));
        }
        // Bytes appended after the last section.
        for (qsizetype extra : {qsizetype(1), qsizetype(64), qsizetype(5000)}) {
            const Status appended = load_bytes(original + QByteArray(extra, 'j'));
            QCOMPARE(appended.code(), ErrorCode::state_malformed);
            QVERIFY2(appended.message().find(std::to_string(extra) + (extra == 1 ? " byte follows" : " bytes follow") + " the last section") !=
                         std::string::npos,
                     appended.message().c_str());
        }
        // Zero-filled tail (same size, last 4 KiB lost).
        QByteArray zeroed = original;
        std::memset(zeroed.data() + zeroed.size() - 4096, 0, 4096);
        QCOMPARE(load_bytes(zeroed).code(), ErrorCode::state_bad_checksum);
        // Another model.
        auto other = make_engine(load_model(tiny_model("tiny-b")), Precision::bf16);
        QCOMPARE(other->load_state(good, nullptr).status().code(), ErrorCode::state_wrong_model);
        // Other engine settings.
        auto fp32 = make_engine(m, Precision::fp32);
        QCOMPARE(fp32->load_state(good, nullptr).status().code(), ErrorCode::state_wrong_model);
        // Other tokens.
        std::vector<int32_t> other_tokens = tokens;
        other_tokens[5] ^= 1;
        QCOMPARE(load_bytes(original, &other_tokens).code(), ErrorCode::state_wrong_tokens);
        std::vector<int32_t> shorter(tokens.begin(), tokens.end() - 1);
        QCOMPARE(load_bytes(original, &shorter).code(), ErrorCode::state_wrong_tokens);
        // A newer format version, with a correct header checksum.
        QByteArray newer = original;
        const uint32_t v2 = 2;
        std::memcpy(newer.data() + 8, &v2, 4);
        const uint64_t h = hash64(newer.constData(), 56);
        std::memcpy(newer.data() + 56, &h, 8);
        const Status st = load_bytes(newer);
        QCOMPARE(st.code(), ErrorCode::state_bad_version);
        QVERIFY(st.message().find("newer") != std::string::npos);
        // Not a file at all.
        QCOMPARE(engine->load_state(path("missing.state"), nullptr).status().code(), ErrorCode::io_error);
    }

    void kill_while_saving_leaves_the_previous_file_intact() {
        // A child `quire logits` loads the state, adds one token and saves over the same file; it
        // is killed at random moments. The file must always load, holding N or more tokens.
        auto m = load_model(tiny_model("tiny-a"));
        auto engine = make_engine(m, Precision::bf16);
        const auto tokens = random_tokens(6000, m->config().vocab_size, 41);
        auto seq = engine->new_sequence();
        run_sequence(*engine, *seq, tokens, 2048, 6000, {});
        const std::string state = path("kill.state");
        QVERIFY(engine->save_state(*seq, state).is_ok());
        const std::string one = path("one.txt");
        write_all(one, "17\n");
        QElapsedTimer timer;
        timer.start();
        QProcess probe;
        probe.start(QString::fromStdString(quire_binary()),
                    {"logits", "--model", QString::fromStdString(tiny_model("tiny-a")), "--tokens", QString::fromStdString(one),
                     "--out", "/dev/null", "--load-state", QString::fromStdString(state), "--save-state",
                     QString::fromStdString(state)});
        QVERIFY(probe.waitForFinished(60000));
        QCOMPARE(probe.exitCode(), 0);
        const qint64 full_ms = std::max<qint64>(timer.elapsed(), 20);
        int64_t expected_min = 6001;
        auto* rng = QRandomGenerator::global();
        for (int round = 0; round < 20; ++round) {
            QProcess child;
            child.start(QString::fromStdString(quire_binary()),
                        {"logits", "--model", QString::fromStdString(tiny_model("tiny-a")), "--tokens", QString::fromStdString(one),
                         "--out", "/dev/null", "--load-state", QString::fromStdString(state), "--save-state",
                         QString::fromStdString(state)});
            QVERIFY(child.waitForStarted());
            QThread::msleep(static_cast<unsigned long>(rng->bounded(static_cast<int>(full_ms))));
            child.kill();  // SIGKILL
            child.waitForFinished();
            auto loaded = engine->load_state(state, nullptr);
            QVERIFY2(loaded.is_ok(), loaded.status().message().c_str());
            QVERIFY(loaded.value()->length() >= expected_min);
            expected_min = loaded.value()->length();
        }
    }
};

QTEST_GUILESS_MAIN(TestCpuState)
#include "test_cpu_state.moc"
