// In the fp32 engine mode (every intermediate kept in fp32, docs/model.md §12) the way a sequence is
// fed must not matter: chunked prefill = one-shot prefill, token-by-token decode = prefill, in the
// dense and the sparse regime, crossing dense_len, at lengths that are not multiples of 16 or 64.
#include <QtTest>

#include <cstring>

#include "cpu/cpu_engine.h"
#include "engine_test_support.h"

using namespace quire;
using namespace quire::test;

namespace {
constexpr float kTolerance = 1e-3f;  // the bound; measured differences are ~1e-7 (fp32 reordering)

void compare(const Rows& a, const Rows& b, const char* what) {
    QCOMPARE(a.size(), b.size());
    for (const auto& [p, row] : a) {
        const auto& other = b.at(p);
        QVERIFY(all_finite(row));
        const float d = max_abs_diff(row, other);
        QVERIFY2(d <= kTolerance, qPrintable(QString("%1: position %2 differs by %3").arg(what).arg(p).arg(d)));
        QVERIFY2(argmax(row) == argmax(other), qPrintable(QString("%1: argmax differs at %2").arg(what).arg(p)));
    }
}
}  // namespace

class TestCpuInvariance : public QObject {
    Q_OBJECT
private slots:
    void invariance_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("length");
        // tiny-a: head_dim 64, GQA 2, sparse layers 0,3; tiny-b: head_dim 128, GQA 4, sparse 0,2.
        QTest::newRow("dense hd64 gqa2") << "tiny-a" << 1007;   // 1007 = 15 mod 16
        QTest::newRow("dense hd128 gqa4") << "tiny-b" << 2063;  // 2063 = 15 mod 16, 15 mod 64
        QTest::newRow("sparse hd64 gqa2") << "tiny-a" << 9103;  // crosses 8192; 9103 = 15 mod 16
        QTest::newRow("sparse hd128 gqa4") << "tiny-b" << 9029; // 9029 = 5 mod 16, 5 mod 64
    }
    void invariance() {
        QFETCH(QString, model);
        QFETCH(int, length);
        auto m = load_model(tiny_model(model.toUtf8().constData()));
        auto engine = make_engine(m, Precision::fp32);
        const auto tokens = random_tokens(length, m->config().vocab_size, 42 + length);
        const int64_t n = length;
        std::vector<int64_t> positions = {0, 63, 64, 1000, n - 2, n - 1};
        if (n > 8192) positions.insert(positions.end(), {6143, 6144, 8190, 8191, 8192, 8193, n - 100});
        const Rows one_shot = run_fresh(*engine, tokens, 0, n, positions);
        const Rows chunked = run_fresh(*engine, tokens, 1000, n, positions);
        compare(chunked, one_shot, "chunked (1000) vs one shot");
        const Rows odd_chunks = run_fresh(*engine, tokens, 777, n, positions);
        compare(odd_chunks, one_shot, "chunked (777) vs one shot");
        // Token-by-token decode over the last ~150 tokens (over the 8192 boundary when sparse).
        const int64_t decode_from = n > 8192 ? 8150 : n - 150;
        const Rows decoded = run_fresh(*engine, tokens, 512, decode_from, positions);
        compare(decoded, one_shot, "decode vs prefill");
    }

    void every_position_decoded_from_start() {
        // A short sequence decoded entirely token by token equals one prefill at every position.
        auto m = load_model(tiny_model("tiny-b"));
        auto engine = make_engine(m, Precision::fp32);
        const auto tokens = random_tokens(150, m->config().vocab_size, 7);
        std::vector<int64_t> all;
        for (int64_t p = 0; p < 150; ++p) all.push_back(p);
        compare(run_fresh(*engine, tokens, 0, 0, all), run_fresh(*engine, tokens, 0, 150, all), "decode all");
    }

    void regime_switches_where_docs_say() {
        // docs/sparse-regime.md: per-query rule: the query at p is sparse iff p + 1 >= dense_len;
        // per-request rule: every query of a request that ends at or past dense_len is sparse.
        auto m = load_model(tiny_model("tiny-a"));
        for (RegimeRule rule : {RegimeRule::per_query, RegimeRule::per_request}) {
            auto engine = make_engine(m, Precision::bf16, rule);
            std::atomic<int64_t> first{1 << 30};
            static_cast<cpu::CpuEngine&>(*engine).set_selection_probe(
                [&](int64_t, int64_t p, int64_t, const std::vector<int64_t>&, float) {
                    int64_t cur = first.load();
                    while (p < cur && !first.compare_exchange_weak(cur, p)) {
                    }
                });
            const auto tokens = random_tokens(8300, m->config().vocab_size, 8);
            auto seq = engine->new_sequence();
            run_sequence(*engine, *seq, tokens, 2000, 8300, {});
            QCOMPARE(first.load(), rule == RegimeRule::per_query ? int64_t(8191) : int64_t(0));
            QTemporaryDir dir;
            const std::string state = dir.path().toStdString() + "/s";
            QVERIFY(engine->save_state(*seq, state).is_ok());
            const QByteArray f = read_all(state);
            int64_t sparse_from;
            std::memcpy(&sparse_from, f.constData() + 40, 8);  // docs/state-format.md: header offset 40
            QCOMPARE(sparse_from, first.load());
        }
    }

    void sparse_equals_dense_when_every_block_is_selected() {
        // With dense_len lowered to 64 and RegimeRule::per_request, a 3,000-token prompt runs every
        // sparse-layer query through InfLLM-v2; below 96 blocks every block is selected, so the
        // logits must equal the dense run exactly.
        QTemporaryDir dir;
        const std::string d = dir.path().toStdString();
        copy_folder(tiny_model("tiny-a"), d);
        QByteArray cfg = read_all(d + "/config.json");
        cfg.replace("\"dense_len\": 8192", "\"dense_len\": 64");
        QVERIFY(write_all(d + "/config.json", cfg));
        auto dense_model = load_model(tiny_model("tiny-a"));
        auto sparse_model = load_model(d);
        auto dense = make_engine(dense_model, Precision::fp32);
        auto sparse = make_engine(sparse_model, Precision::fp32, RegimeRule::per_request);
        int64_t sparse_queries = 0;
        static_cast<cpu::CpuEngine&>(*sparse).set_selection_probe(
            [&](int64_t, int64_t p, int64_t, const std::vector<int64_t>& blocks, float) {
                if (static_cast<int64_t>(blocks.size()) != p / 64 + 1) qFatal("not every block selected at %lld", (long long)p);
                __atomic_add_fetch(&sparse_queries, 1, __ATOMIC_RELAXED);
            });
        const auto tokens = random_tokens(3000, dense_model->config().vocab_size, 99);
        const std::vector<int64_t> positions = {100, 1500, 2999};
        const Rows a = run_fresh(*dense, tokens, 0, 3000, positions);
        const Rows b = run_fresh(*sparse, tokens, 0, 3000, positions);
        QVERIFY(sparse_queries >= 3000);
        for (int64_t p : positions) QCOMPARE(max_abs_diff(a.at(p), b.at(p)), 0.0f);
    }
};

QTEST_APPLESS_MAIN(TestCpuInvariance)
#include "test_cpu_invariance.moc"
