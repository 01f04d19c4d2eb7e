// Checkpoint loading: a good tiny model binds every tensor; each kind of damage is rejected with
// its own message (safetensors rules, index rules, binding against the config).
#include <QtTest>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "bf16.h"
#include "checkpoint.h"
#include "model_tensors.h"
#include "safetensors.h"
#include "test_support.h"

using namespace quire;
namespace fs = std::filesystem;

namespace {

struct RawTensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    QByteArray bytes;
};

QByteArray header_bytes(const std::string& json) {
    QByteArray out(8, '\0');
    const uint64_t n = json.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
    return out + QByteArray::fromStdString(json);
}

Result<SafetensorsHeader> parse(const QByteArray& file) {
    return parse_safetensors_header(reinterpret_cast<const uint8_t*>(file.constData()), file.size(), file.size(), "t.safetensors");
}

std::vector<RawTensor> read_tensors(const std::string& dir) {
    std::vector<RawTensor> out;
    auto shards = find_shards(dir);
    for (const auto& file : shards->files) {
        const QByteArray bytes = test::read_all(file);
        auto h = parse(bytes);
        for (const auto& e : h->tensors)
            out.push_back({e.name, e.dtype, e.shape, bytes.mid(h->data_offset + e.begin, e.end - e.begin)});
    }
    return out;
}

// Replaces the shards and index with one model.safetensors holding `tensors`.
void write_single_file(const std::string& dir, const std::vector<RawTensor>& tensors) {
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json")
            fs::remove(e.path());
    std::vector<SafetensorsEntry> entries;
    for (const auto& t : tensors) entries.push_back({t.name, t.dtype, t.shape, 0, 0});
    QByteArray file = QByteArray::fromStdString(make_safetensors_header(entries, {}));
    for (const auto& t : tensors) file += t.bytes;
    QVERIFY(test::write_all(dir + "/model.safetensors", file));
}

// Every BF16 tensor in F16 (the nearest value).
void to_float16(std::vector<RawTensor>& t) {
    for (auto& r : t) {
        if (r.dtype != DType::bf16) continue;
        for (qsizetype i = 0; i < r.bytes.size(); i += 2) {
            uint16_t b;
            std::memcpy(&b, r.bytes.constData() + i, 2);
            const uint16_t h = float_to_fp16(bf16_to_float(b));
            std::memcpy(r.bytes.data() + i, &h, 2);
        }
        r.dtype = DType::f16;
    }
}

std::string first_shard(const std::string& dir) { return dir + "/model-00001-of-00002.safetensors"; }

}  // namespace

class TestCheckpoint : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;
    std::string model_;
    ModelConfig config_;

    Status open() { return Checkpoint::open(model_, config_).status(); }
    void expect_error(const char* needle) {
        const Status s = open();
        QVERIFY2(!s.is_ok(), "damaged checkpoint was accepted");
        QCOMPARE(s.code(), ErrorCode::invalid_checkpoint);
        QVERIFY2(s.message().find(needle) != std::string::npos, s.message().c_str());
    }

private slots:
    void init() {
        model_ = tmp_.path().toStdString() + "/" + QTest::currentTestFunction();
        fs::remove_all(model_);
        test::copy_folder(test::tiny_model("tiny-a"), model_);
        config_ = load_model_config(model_ + "/config.json").value();
    }

    void good_model_binds_every_tensor() {
        auto ck = Checkpoint::open(model_, config_);
        QVERIFY2(ck.is_ok(), ck.status().message().c_str());
        const auto specs = expected_tensors(config_);
        QCOMPARE(ck->tensors().size(), specs.size());
        for (const auto& s : specs) {
            const TensorRef* t = ck->find(s.name);
            QVERIFY2(t, s.name.c_str());
            QCOMPARE(t->shape, s.shape);
            QCOMPARE(t->bytes, s.element_count() * 2);
        }
        QCOMPARE(ck->shard_count(), int64_t(2));
        QVERIFY(ck->headers_hash() != 0);
    }
    // After a GPU upload the engine drops the mapping's resident pages: the process's file-backed
    // resident memory falls by the checkpoint's size, and the bytes read back the same.
    void released_pages_leave_the_process_and_read_back() {
        auto ck = Checkpoint::open(model_, config_);
        QVERIFY2(ck.is_ok(), ck.status().message().c_str());
        auto checksum = [&] {
            uint64_t h = 0;
            for (const auto& [name, t] : ck->tensors())
                for (int64_t i = 0; i < t.bytes; i += 512) h = h * 31 + t.data[i];
            return h;
        };
        auto rss_file_kb = [] {
            const QByteArray status = test::read_all("/proc/self/status");
            for (const QByteArray& line : status.split('\n'))
                if (line.startsWith("RssFile:")) return line.mid(8).trimmed().split(' ').first().toLongLong();
            return -1LL;
        };
        const uint64_t before = checksum();  // every page touched
        const long long touched = rss_file_kb();
        ck->release_resident_pages();
        const long long released = rss_file_kb();
        QVERIFY2(touched >= 0 && released >= 0, "no RssFile in /proc/self/status");
        const long long weights_kb = ck->total_bytes() / 1024;
        QVERIFY2(touched - released >= weights_kb * 8 / 10,
                 qPrintable(QString("RssFile %1 kB -> %2 kB for %3 kB of weights").arg(touched).arg(released).arg(weights_kb)));
        QCOMPARE(checksum(), before);
    }
    void single_file_layout_loads() {
        write_single_file(model_, read_tensors(model_));
        QVERIFY2(open().is_ok(), open().message().c_str());
    }

    // --- safetensors rules, on the real shard files --------------------------------------------
    void truncated_shard() {
        const QByteArray b = test::read_all(first_shard(model_));
        QVERIFY(test::write_all(first_shard(model_), b.left(b.size() - 100)));
        expect_error("truncated: tensors need");
    }
    void header_length_past_end() {
        QByteArray b = test::read_all(first_shard(model_));
        const uint64_t len = static_cast<uint64_t>(b.size());
        for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
        QVERIFY(test::write_all(first_shard(model_), b));
        expect_error("runs past the end of the file");
    }
    void header_over_100mb() {
        QByteArray b = test::read_all(first_shard(model_));
        const uint64_t len = 200'000'000;
        for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
        QVERIFY(test::write_all(first_shard(model_), b));
        expect_error("exceeds the 100 MB limit");
    }
    void non_json_header() {
        QByteArray b = test::read_all(first_shard(model_));
        b[8] = 'X';
        QVERIFY(test::write_all(first_shard(model_), b));
        expect_error("header is not valid JSON");
    }
    void tiny_file() {
        QVERIFY(test::write_all(first_shard(model_), QByteArray("abc")));
        expect_error("too short for the 8-byte header length");
    }

    // --- safetensors rules, on crafted headers ---------------------------------------------------
    void crafted_header_data() {
        QTest::addColumn<QString>("json");
        QTest::addColumn<int>("data_bytes");
        QTest::addColumn<QString>("expected");
        QTest::newRow("overlap") << R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})" << 6 << "overlapping offsets";
        QTest::newRow("gap") << R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})" << 10 << "gap in data";
        QTest::newRow("gap at start") << R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})" << 6 << "gap in data";
        QTest::newRow("trailing bytes") << R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})" << 9 << "trailing bytes: 5";
        QTest::newRow("unknown dtype") << R"({"a":{"dtype":"Q4","shape":[4],"data_offsets":[0,4]}})" << 4 << "unknown dtype 'Q4'";
        QTest::newRow("size mismatch") << R"({"a":{"dtype":"BF16","shape":[4],"data_offsets":[0,4]}})" << 4 << "size mismatch";
        QTest::newRow("duplicate name") << R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})" << 4 << "duplicate tensor name 'a'";
        QTest::newRow("shape overflow") << R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})" << 8 << "overflows 64 bits";
        QTest::newRow("negative shape") << R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})" << 0 << "not a non-negative integer";
        QTest::newRow("reversed offsets") << R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})" << 4 << "negative or reversed";
        QTest::newRow("not an object") << R"([1,2])" << 0 << "not a JSON object";
        QTest::newRow("missing offsets") << R"({"a":{"dtype":"U8","shape":[1]}})" << 1 << "needs data_offsets";
        QTest::newRow("bad metadata") << R"({"__metadata__":{"k":1}})" << 0 << "__metadata__ value";
        QTest::newRow("truncated data") << R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})" << 3 << "truncated: tensors need 8";
    }
    void crafted_header() {
        QFETCH(QString, json);
        QFETCH(int, data_bytes);
        QFETCH(QString, expected);
        const QByteArray file = header_bytes(json.toStdString()) + QByteArray(data_bytes, '\x5a');
        auto h = parse(file);
        QVERIFY(!h.is_ok());
        QVERIFY2(h.status().message().find(expected.toStdString()) != std::string::npos, h.status().message().c_str());
    }
    void crafted_good_header_roundtrip() {
        std::vector<SafetensorsEntry> entries = {{"w", DType::bf16, {2, 3}, 0, 0}, {"n", DType::f32, {3}, 0, 0}};
        const QByteArray file = QByteArray::fromStdString(make_safetensors_header(entries, {{"format", "pt"}})) + QByteArray(24, '\0');
        auto h = parse(file);
        QVERIFY2(h.is_ok(), h.status().message().c_str());
        QCOMPARE(h->tensors.size(), size_t(2));
        QCOMPARE(h->metadata.at("format"), std::string("pt"));
        QCOMPARE(h->data_offset % 8, int64_t(0));
    }

    // --- binding against the config -------------------------------------------------------------
    void missing_tensor() {
        auto t = read_tensors(model_);
        t.erase(std::remove_if(t.begin(), t.end(), [](const RawTensor& r) { return r.name == "model.layers.1.self_attn.z_proj.weight"; }), t.end());
        write_single_file(model_, t);
        expect_error("missing tensor 'model.layers.1.self_attn.z_proj.weight'");
    }
    void unexpected_tensor() {
        auto t = read_tensors(model_);
        t.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", DType::f32, {2}, QByteArray(8, '\0')});
        write_single_file(model_, t);
        expect_error("unexpected tensor 'model.layers.0.self_attn.rotary_emb.inv_freq'");
    }
    void shape_disagrees_with_config() {
        auto t = read_tensors(model_);
        for (auto& r : t)
            if (r.name == "model.layers.0.mlp.up_proj.weight") std::swap(r.shape[0], r.shape[1]);
        write_single_file(model_, t);
        expect_error("tensor 'model.layers.0.mlp.up_proj.weight' has shape [128, 256] but the config implies [256, 128]");
    }
    void wrong_dtype() {
        auto t = read_tensors(model_);
        for (auto& r : t)
            if (r.name == "model.layers.0.mlp.up_proj.weight") {
                r.dtype = DType::f16;
            }
        write_single_file(model_, t);
        expect_error("tensor 'model.layers.0.mlp.up_proj.weight' has dtype F16 but BF16 is required (config.json: dtype \"bfloat16\")");
    }

    // --- float16 checkpoints (docs/model.md §6) --------------------------------------------------
    void float16_checkpoint_binds() {
        auto t = read_tensors(model_);
        to_float16(t);
        config_.dtype = "float16";
        for (auto& r : t)  // F32 norm vectors are accepted in a float16 checkpoint as in a bfloat16 one
            if (r.name == "model.norm.weight") {
                QByteArray f32;
                for (qsizetype i = 0; i < r.bytes.size(); i += 2) {
                    uint16_t h;
                    std::memcpy(&h, r.bytes.constData() + i, 2);
                    const float v = fp16_to_float(h);
                    f32.append(reinterpret_cast<const char*>(&v), 4);
                }
                r.bytes = f32;
                r.dtype = DType::f32;
            }
        write_single_file(model_, t);
        auto ck = Checkpoint::open(model_, config_);
        QVERIFY2(ck.is_ok(), ck.status().message().c_str());
        QCOMPARE(checkpoint_dtype(config_), DType::f16);
        QCOMPARE(ck->find("model.embed_tokens.weight")->dtype, DType::f16);
        QCOMPARE(ck->find("model.norm.weight")->dtype, DType::f32);
        // The same bytes with the config saying bfloat16: every F16 tensor is named.
        config_.dtype = "bfloat16";
        expect_error("tensor 'model.embed_tokens.weight' has dtype F16 but BF16 is required (config.json: dtype \"bfloat16\")");
        QVERIFY(open().message().find("tensor 'lm_head.weight' has dtype F16") != std::string::npos);
        QVERIFY(open().message().find("model.norm.weight") == std::string::npos);  // F32 stays acceptable
    }
    // A float16 checkpoint with one BF16 matrix (or BF16 norm) is refused, the tensor named: the
    // loader does not guess which of two 16-bit formats a tensor is meant to be.
    void float16_checkpoint_with_a_bf16_tensor() {
        auto t = read_tensors(model_);
        const auto original = t;
        to_float16(t);
        config_.dtype = "float16";
        for (size_t i = 0; i < t.size(); ++i)
            if (t[i].name == "model.layers.2.mlp.down_proj.weight" || t[i].name == "model.layers.1.input_layernorm.weight") t[i] = original[i];
        write_single_file(model_, t);
        expect_error("tensor 'model.layers.2.mlp.down_proj.weight' has dtype BF16 but F16 is required (config.json: dtype \"float16\")");
        QVERIFY(open().message().find("tensor 'model.layers.1.input_layernorm.weight' has dtype BF16 but F16 is required") != std::string::npos);
    }
    // fp16 -> bf16 on every one of the 65536 half values against a reference written here: the
    // nearest bf16 value, ties to the even one; NaN stays NaN, infinities stay infinite.
    void fp16_to_bf16_rounds_to_nearest_even() {
        int64_t inexact = 0, inexact_subnormal = 0;
        for (uint32_t h = 0; h < 65536; ++h) {
            const int e = static_cast<int>((h >> 10) & 31), m = static_cast<int>(h & 1023);
            const double sign = (h & 0x8000) ? -1.0 : 1.0;
            const uint16_t b = fp16_to_bf16(static_cast<uint16_t>(h));
            const float got = bf16_to_float(b);
            if (e == 31) {
                QVERIFY2(m ? std::isnan(got) : got == static_cast<float>(sign * INFINITY), qPrintable(QString::number(h, 16)));
                continue;
            }
            const double v = sign * (e == 0 ? std::ldexp(m, -24) : std::ldexp(m + 1024, e - 25));
            // The neighbours of the result on bf16's grid are no nearer, and a tie lands on an even word.
            const double d = std::fabs(static_cast<double>(got) - v);
            for (int step : {-1, 1}) {
                const double other = bf16_to_float(static_cast<uint16_t>(b + step));
                if (std::isnan(other)) continue;  // below +0 the words wrap to NaN
                const double od = std::fabs(other - v);
                QVERIFY2(d < od || (d == od && (b & 1) == 0), qPrintable(QString("half 0x%1").arg(h, 4, 16, QChar('0'))));
            }
            if (d != 0) {
                ++inexact;
                if (e == 0) ++inexact_subnormal;
            }
        }
        // fp16 has 11 significant bits, bf16 8: a value with more than 8 loses its last ones. Normal
        // values: 2 signs x 30 exponents x 896 mantissas with one of the lowest 3 bits set. Subnormals
        // (m x 2^-24): those from 2^-16 up with more than 8 significant bits, the 128 odd m in
        // [256, 512) and the 384 m in [512, 1024) not divisible by 4; the smaller ones are exact.
        QCOMPARE(inexact, int64_t(2 * 30 * 896 + 2 * (128 + 384)));
        QVERIFY(inexact_subnormal > 0);
        QCOMPARE(fp16_to_bf16(0x0001), uint16_t(0x3380));  // 2^-24, exact
        QCOMPARE(fp16_to_bf16(0x3C00), uint16_t(0x3F80));  // 1.0
        QCOMPARE(fp16_to_bf16(0x7BFF), uint16_t(0x4780));  // 65504 rounds up to 65536: in range for bf16
        QCOMPARE(fp16_to_bf16(0xFC00), uint16_t(0xFF80));  // -inf
    }
    void config_expects_other_layers() {
        // A config that claims a lightning layer where the weights are sparse.
        config_.mixer_types[3] = MixerType::lightning;
        expect_error("missing tensor 'model.layers.3.self_attn.z_proj.weight'");
        QVERIFY(open().message().find("unexpected tensor 'model.layers.3.self_attn.o_gate.weight'") != std::string::npos);
    }

    // --- index rules -------------------------------------------------------------------------------
    void index_names_missing_shard() {
        QByteArray idx = test::read_all(model_ + "/model.safetensors.index.json");
        idx.replace("model-00002-of-00002.safetensors", "model-00009-of-00009.safetensors");
        QVERIFY(test::write_all(model_ + "/model.safetensors.index.json", idx));
        expect_error("names shard 'model-00009-of-00009.safetensors', which does not exist");
    }
    void index_path_outside_folder_data() {
        QTest::addColumn<QString>("name");
        QTest::newRow("dot-dot") << "../model-00002-of-00002.safetensors";
        QTest::newRow("absolute") << "/etc/passwd";
        QTest::newRow("nested dot-dot") << "sub/../../x.safetensors";
    }
    void index_path_outside_folder() {
        QFETCH(QString, name);
        QByteArray idx = test::read_all(model_ + "/model.safetensors.index.json");
        idx.replace("model-00002-of-00002.safetensors", name.toUtf8());
        QVERIFY(test::write_all(model_ + "/model.safetensors.index.json", idx));
        expect_error("is outside the model folder");
    }
    void index_symlink_escaping_folder() {
        fs::create_symlink(tmp_.path().toStdString(), model_ + "/escape");
        QByteArray idx = test::read_all(model_ + "/model.safetensors.index.json");
        idx.replace("model-00002-of-00002.safetensors", "escape/x.safetensors");
        QVERIFY(test::write_all(model_ + "/model.safetensors.index.json", idx));
        expect_error("is outside the model folder");
    }
    void index_disagrees_with_shard() {
        QByteArray idx = test::read_all(model_ + "/model.safetensors.index.json");
        idx.replace("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"", "\"model.norm.weight\": \"model-00001-of-00002.safetensors\"");
        QVERIFY(test::write_all(model_ + "/model.safetensors.index.json", idx));
        expect_error("index puts it in model-00001-of-00002.safetensors");
    }
    void index_not_json() {
        QVERIFY(test::write_all(model_ + "/model.safetensors.index.json", "{\"weight_map\": "));
        expect_error("model.safetensors.index.json");
    }
    void no_weights_at_all() {
        for (const auto& e : fs::directory_iterator(model_))
            if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json")
                fs::remove(e.path());
        expect_error("weights are missing");
    }
};

QTEST_APPLESS_MAIN(TestCheckpoint)
#include "test_checkpoint.moc"
