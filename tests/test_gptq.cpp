// GPTQ weights (docs/quantization.md): the dequantization formula on hand-packed words, the
// tiny-model tool's RTN packing read back by the engine, every inconsistent tensor of a quantized
// checkpoint named, and the CPU engine on a GPTQ tiny model against the same engine on the model's
// dequantized weights written as an ordinary bf16 checkpoint.
#include <QProcess>
#include <QStandardPaths>
#include <QtTest>

#include <filesystem>
#include <random>

#include "bf16.h"
#include "checkpoint.h"
#include "engine_test_support.h"
#include "model.h"
#include "model_info.h"
#include "quant/fp16.h"
#include "quant/gptq_dequant.h"
#include "safetensors.h"
#include "tiny_model.h"

using namespace quire;
namespace fs = std::filesystem;

namespace {

tools::TinyModelOptions tiny_options(const std::string& dir, const tools::TinyGptqOptions& gptq) {
    tools::TinyModelOptions o;  // tiny-a's shape
    o.out_dir = dir;
    o.corpus_dir = std::string(QUIRE_SOURCE_DIR) + "/resources/tokenizer_corpus";
    o.sparse_layers = {0, 3};
    o.shards = 1;
    o.seed = 11;
    o.gptq = gptq;
    return o;
}

struct Tensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::string bytes;
};

std::vector<Tensor> read_tensors(const std::string& dir) {
    std::vector<Tensor> out;
    const auto shards = find_shards(dir);
    if (!shards) qFatal("%s", shards.status().message().c_str());
    for (const auto& file : shards->files) {
        const QByteArray b = test::read_all(file);
        auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(b.constData()), b.size(), b.size(), file);
        for (const auto& e : h->tensors)
            out.push_back({e.name, e.dtype, e.shape,
                           std::string(b.constData() + h->data_offset + e.begin, static_cast<size_t>(e.end - e.begin))});
    }
    return out;
}

// Replaces the folder's weights with one model.safetensors holding `tensors`.
void rewrite(const std::string& dir, const std::vector<Tensor>& tensors) {
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json")
            fs::remove(e.path());
    std::vector<SafetensorsEntry> entries;
    for (const auto& t : tensors) entries.push_back({t.name, t.dtype, t.shape, 0, 0});
    std::string file = make_safetensors_header(entries, {});
    for (const auto& t : tensors) file += t.bytes;
    QVERIFY(test::write_all(dir + "/model.safetensors", QByteArray::fromStdString(file)));
}

Tensor* find(std::vector<Tensor>& ts, const std::string& name) {
    for (auto& t : ts)
        if (t.name == name) return &t;
    qFatal("no tensor %s", name.c_str());
}

void put_i32(std::string& bytes, int64_t index, int32_t v) { std::memcpy(bytes.data() + 4 * index, &v, 4); }

// A GptqTensors over owned, aligned copies of packed bytes.
struct OwnedGptq {
    std::vector<int32_t> qweight, qzeros, g_idx;
    std::vector<uint16_t> scales;

    GptqTensors view(int64_t in, int64_t out, int bits, int64_t group_size, int zero_offset, bool with_g_idx) const {
        GptqTensors t;
        t.qweight = qweight.data();
        t.qzeros = qzeros.data();
        t.scales = scales.data();
        t.g_idx = with_g_idx ? g_idx.data() : nullptr;
        t.in = in;
        t.out = out;
        t.bits = bits;
        t.group_size = group_size;
        t.zero_offset = zero_offset;
        return t;
    }
};

}  // namespace

class TestGptq : public QObject {
    Q_OBJECT
    QTemporaryDir tmp_;

    int folders_ = 0;

    // A new folder name (plain characters: the tokenizer trainer takes its path on a command line).
    std::string fresh(const char* name) {
        const std::string dir = tmp_.path().toStdString() + "/" + name + std::to_string(++folders_);
        fs::remove_all(dir);
        return dir;
    }
    static void write_model(const tools::TinyModelOptions& o) {
        const Status s = tools::write_tiny_model(o);
        if (!s) qFatal("cannot write %s: %s", o.out_dir.c_str(), s.message().c_str());
    }
    // The data columns of a test over GPTQ tiny models, and the options they describe.
    static void add_model_columns() {
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("group");
        QTest::addColumn<bool>("sym");
        QTest::addColumn<bool>("desc_act");
        QTest::addColumn<bool>("v2");
        QTest::addColumn<QString>("dynamic");
    }
    static tools::TinyGptqOptions fetch_model_options() {
        QFETCH(int, bits);
        QFETCH(int, group);
        QFETCH(bool, sym);
        QFETCH(bool, desc_act);
        QFETCH(bool, v2);
        QFETCH(QString, dynamic);
        return {bits, group, sym, desc_act, v2, dynamic.toStdString(), false};
    }
    // Runs tools/reference/gptq.py (pure Python: no torch needed) with these arguments.
    static void run_reference(const QStringList& args) {
        const QString python = QStandardPaths::findExecutable("python3");
        if (python.isEmpty()) QSKIP("python3 is not installed: the reference's GPTQ code cannot be checked here");
        QProcess p;
        p.start(python, QStringList{QString(QUIRE_SOURCE_DIR) + "/tools/reference/gptq.py"} + args);
        QVERIFY(p.waitForFinished(300000));
        QVERIFY2(p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0, p.readAllStandardError().constData());
    }
    // Every tensor of `a` has the same dtype, shape and bytes in `b`, and the other way round.
    static void expect_same_tensors(const std::string& a, const std::string& b) {
        auto ta = read_tensors(a), tb = read_tensors(b);
        QCOMPARE(ta.size(), tb.size());
        std::map<std::string, const Tensor*> by_name;
        for (const auto& t : tb) by_name[t.name] = &t;
        for (const auto& t : ta) {
            auto it = by_name.find(t.name);
            QVERIFY2(it != by_name.end(), t.name.c_str());
            QVERIFY2(it->second->dtype == t.dtype && it->second->shape == t.shape, t.name.c_str());
            QVERIFY2(it->second->bytes == t.bytes, (t.name + " differs").c_str());
        }
    }
    void expect_load_error(const std::string& dir, const std::string& needle) {
        auto m = Model::load(dir);
        QVERIFY2(!m.is_ok(), "the damaged checkpoint was accepted");
        QVERIFY2(m.status().message().find(needle) != std::string::npos, m.status().message().c_str());
    }

private slots:
    void fp16_conversions_round_trip() {
        for (uint32_t h = 0; h < 65536; ++h) {
            const float f = fp16_to_float(static_cast<uint16_t>(h));
            if (std::isnan(f)) continue;
            QCOMPARE(float_to_fp16(f), static_cast<uint16_t>(h));
        }
        QCOMPARE(fp16_to_float(0x3C00), 1.0f);
        QCOMPARE(fp16_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
        QCOMPARE(float_to_fp16(1.0f + std::ldexp(1.0f, -11)), uint16_t(0x3C00));  // tie to even
        QCOMPARE(float_to_fp16(65519.0f), uint16_t(0x7BFF));
        QCOMPARE(float_to_fp16(65520.0f), uint16_t(0x7C00));  // overflows to inf
        QCOMPARE(float_to_fp16(std::ldexp(1.5f, -25)), uint16_t(0x0001));
        QCOMPARE(float_to_fp16(std::ldexp(1.0f, -25)), uint16_t(0x0000));  // tie to even (0)
    }

    // Words packed by hand from known q, zero and scale values; the formula of docs/quantization.md §4.
    void dequantization_of_hand_packed_words_data() {
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("zero_offset");
        QTest::addColumn<bool>("permuted");
        QTest::newRow("4-bit gptq") << 4 << 1 << false;
        QTest::newRow("4-bit gptq_v2 permuted g_idx") << 4 << 0 << true;
        QTest::newRow("8-bit gptq permuted g_idx") << 8 << 1 << true;
        QTest::newRow("8-bit gptq_v2") << 8 << 0 << false;
    }
    void dequantization_of_hand_packed_words() {
        QFETCH(int, bits);
        QFETCH(int, zero_offset);
        QFETCH(bool, permuted);
        const int64_t in = 64, out = 16, gs = 16, groups = in / gs;
        const int pw = 32 / bits, maxq = (1 << bits) - 1;
        auto q = [&](int64_t k, int64_t j) { return static_cast<int>((3 * k + 5 * j + k * j) % (maxq + 1)); };
        auto z = [&](int64_t g, int64_t j) { return static_cast<int>((7 * g + 3 * j + 1) % maxq); };  // stored
        auto s = [&](int64_t g, int64_t j) { return 0.5f + 0.25f * static_cast<float>(g) - 0.0625f * static_cast<float>(j); };
        auto grp = [&](int64_t k) { return permuted ? (k * 5 + 3) % groups : k / gs; };
        OwnedGptq o;
        o.qweight.assign(static_cast<size_t>(in / pw * out), 0);
        o.qzeros.assign(static_cast<size_t>(groups * out / pw), 0);
        o.scales.resize(static_cast<size_t>(groups * out));
        o.g_idx.resize(static_cast<size_t>(in));
        for (int64_t k = 0; k < in; ++k)
            for (int64_t j = 0; j < out; ++j)
                o.qweight[static_cast<size_t>((k / pw) * out + j)] |= static_cast<int32_t>(static_cast<uint32_t>(q(k, j)) << (bits * (k % pw)));
        for (int64_t g = 0; g < groups; ++g)
            for (int64_t j = 0; j < out; ++j) {
                o.qzeros[static_cast<size_t>(g * out / pw + j / pw)] |= static_cast<int32_t>(static_cast<uint32_t>(z(g, j)) << (bits * (j % pw)));
                o.scales[static_cast<size_t>(g * out + j)] = float_to_fp16(s(g, j));
            }
        for (int64_t k = 0; k < in; ++k) o.g_idx[static_cast<size_t>(k)] = static_cast<int32_t>(grp(k));
        const GptqTensors t = o.view(in, out, bits, gs, zero_offset, permuted);
        std::vector<float> rows(static_cast<size_t>(5 * in));
        gptq_dequantize_rows(t, 7, 12, rows.data(), false);
        for (int64_t j = 0; j < out; ++j)
            for (int64_t k = 0; k < in; ++k) {
                const int64_t g = grp(k);
                const float expected = s(g, j) * static_cast<float>(q(k, j) - (z(g, j) + zero_offset));
                // Exact equality (QCOMPARE on floats is fuzzy).
                QVERIFY2(gptq_weight(t, j, k) == expected, qPrintable(QString("W[%1, %2]").arg(j).arg(k)));
                if (j >= 7 && j < 12) QVERIFY(rows[static_cast<size_t>((j - 7) * in + k)] == expected);
            }
    }

    // The tool packs with its own arithmetic; the engine unpacks to exactly the values the tool meant.
    void tool_packing_reads_back_exactly_data() {
        QTest::addColumn<int>("bits");
        QTest::addColumn<int>("group");
        QTest::addColumn<bool>("sym");
        QTest::addColumn<bool>("desc_act");
        QTest::addColumn<bool>("v2");
        QTest::addColumn<double>("max_rel_rms");
        QTest::newRow("4 sym g32") << 4 << 32 << true << false << false << 0.2;
        QTest::newRow("4 asym g64 act v2") << 4 << 64 << false << true << true << 0.2;
        QTest::newRow("4 asym g128 gptq") << 4 << 128 << false << false << false << 0.2;
        QTest::newRow("8 sym g128 act") << 8 << 128 << true << true << false << 0.02;
        QTest::newRow("8 asym g-1 v2") << 8 << -1 << false << false << true << 0.02;
    }
    void tool_packing_reads_back_exactly() {
        QFETCH(int, bits);
        QFETCH(int, group);
        QFETCH(bool, sym);
        QFETCH(bool, desc_act);
        QFETCH(bool, v2);
        QFETCH(double, max_rel_rms);
        const int64_t out = 64, in = 256;
        std::mt19937 rng(5);
        std::normal_distribution<float> normal(0.0f, 0.05f);
        std::vector<float> w(static_cast<size_t>(out * in));
        for (auto& x : w) x = round_bf16(normal(rng));
        ModuleQuant mq{true, bits, group, sym, desc_act, {}};
        const tools::GptqTensorsBytes g = tools::rtn_quantize(w, out, in, mq, v2, 99);
        OwnedGptq o;
        o.qweight.resize(g.qweight.size() / 4);
        o.qzeros.resize(g.qzeros.size() / 4);
        o.g_idx.resize(g.g_idx.size() / 4);
        o.scales.resize(g.scales.size() / 2);
        std::memcpy(o.qweight.data(), g.qweight.data(), g.qweight.size());
        std::memcpy(o.qzeros.data(), g.qzeros.data(), g.qzeros.size());
        std::memcpy(o.g_idx.data(), g.g_idx.data(), g.g_idx.size());
        std::memcpy(o.scales.data(), g.scales.data(), g.scales.size());
        const int64_t gs = group == -1 ? in : group;
        bool trivial = true;
        for (int64_t k = 0; k < in; ++k) trivial = trivial && o.g_idx[static_cast<size_t>(k)] == k / gs;
        QCOMPARE(trivial, !desc_act);
        const GptqTensors t = o.view(in, out, bits, gs, v2 ? 0 : 1, desc_act);
        std::vector<float> deq(static_cast<size_t>(out * in));
        gptq_dequantize_rows(t, 0, out, deq.data(), false);
        for (size_t i = 0; i < deq.size(); ++i)
            if (deq[i] != g.dequantized[i]) QFAIL(qPrintable(QString("element %1: engine %2, tool %3").arg(i).arg(deq[i]).arg(g.dequantized[i])));
        const double err = test::rel_rms(deq, w);
        qInfo("RTN %d-bit relative RMS error %.4f", bits, err);
        QVERIFY(err < max_rel_rms);
    }

    // The CPU engine on a GPTQ model against the same engine on its dequantized weights as bf16.
    void engine_matches_dequantized_bf16_twin_data() {
        add_model_columns();
        QTest::newRow("4-bit sym g32 gptq, SALA skips") << 4 << 32 << true << false << false << "sala";
        QTest::newRow("4-bit asym g64 desc_act gptq_v2") << 4 << 64 << false << true << true << "";
        QTest::newRow("8-bit sym g128 desc_act gptq") << 8 << 128 << true << true << false << "";
        QTest::newRow("8-bit asym g-1 gptq_v2") << 8 << -1 << false << false << true << "";
        QTest::newRow("4-bit asym g32 gptq, mixed dynamic") << 4 << 32 << false << false << false << "mixed";
    }
    void engine_matches_dequantized_bf16_twin() {
        tools::TinyGptqOptions g = fetch_model_options();
        const std::string qdir = fresh("gptq"), tdir = fresh("twin");
        write_model(tiny_options(qdir, g));
        g.dequantized_twin = true;
        write_model(tiny_options(tdir, g));
        auto quantized = test::load_model(qdir);
        auto twin = test::load_model(tdir);
        QVERIFY(quantized->weights().quantized());
        QVERIFY(!twin->weights().quantized());
        QCOMPARE(quantized->config().quantization->dynamic.empty(), g.dynamic.empty());

        const auto tokens = test::random_tokens(300, quantized->config().vocab_size, 7);
        const std::vector<int64_t> positions = {0, 1, 63, 64, 150, 290, 295, 299};
        // bf16 (the default precision): the dequantized weight is rounded to bf16 where the twin
        // stores it, so the two runs are the same arithmetic and must agree exactly.
        {
            auto eq = test::make_engine(quantized, Precision::bf16);
            auto et = test::make_engine(twin, Precision::bf16);
            const auto a = test::run_fresh(*eq, tokens, 128, 290, positions);
            const auto b = test::run_fresh(*et, tokens, 128, 290, positions);
            for (int64_t p : positions) {
                QVERIFY(test::all_finite(a.at(p)));
                QVERIFY2(a.at(p) == b.at(p), qPrintable(QString("position %1: max |d| %2").arg(p).arg(test::max_abs_diff(a.at(p), b.at(p)))));
            }
        }
        // fp32: the quantized run keeps the exact fp32 dequantized weight, the twin its bf16 rounding;
        // they differ by that rounding only, within the bf16 bound of docs/correctness.md.
        {
            auto eq = test::make_engine(quantized, Precision::fp32);
            auto et = test::make_engine(twin, Precision::fp32);
            const auto a = test::run_fresh(*eq, tokens, 0, 300, positions);
            const auto b = test::run_fresh(*et, tokens, 0, 300, positions);
            double worst = 0;
            for (int64_t p : positions) worst = std::max(worst, test::rel_rms(a.at(p), b.at(p)));
            qInfo("fp32 mode, GPTQ vs bf16 twin: max rel-RMS %.2e", worst);
            QVERIFY(worst <= 0.03);
        }
    }

    // A float16 GPTQ checkpoint (torch_dtype float16, as GPTQModel often writes: embedding, norms,
    // lm_head and the dynamic rules' skips in F16) against a twin holding the same numbers in BF16
    // (values both formats represent, tools/tiny_model): the loader's bf16 copies must be the twin's
    // words, so the CPU engine's logits agree bit for bit, untied and with tied embeddings.
    void float16_checkpoint_matches_bf16_twin() {
        const tools::TinyGptqOptions g{4, 32, true, false, false, "sala", false};
        const std::string hdir = fresh("f16"), bdir = fresh("f16twin");
        tools::TinyModelOptions ho = tiny_options(hdir, g), bo = tiny_options(bdir, g);
        ho.dtype = "float16";
        bo.fp16_values = true;
        write_model(ho);
        write_model(bo);
        QVERIFY(test::read_all(hdir + "/config.json").contains("\"torch_dtype\": \"float16\""));

        auto half = test::load_model(hdir);
        auto twin = test::load_model(bdir);
        QCOMPARE(half->config().dtype, std::string("float16"));
        QCOMPARE(twin->config().dtype, std::string("bfloat16"));
        // Every unquantized tensor of the twin is BF16 there and F16 here (GPTQ scales are F16 in both);
        // among them fp16 subnormals, so that path of the conversion runs too.
        int64_t f16_tensors = 0, subnormals = 0, f16_matrix_bytes = 0;
        for (const auto& [name, t] : twin->weights().checkpoint->tensors()) {
            const TensorRef* h = half->weights().checkpoint->find(name);
            QVERIFY2(h, name.c_str());
            if (t.dtype != DType::bf16) {
                QCOMPARE(h->dtype, t.dtype);
                continue;
            }
            QCOMPARE(h->dtype, DType::f16);
            QVERIFY2(std::memcmp(h->data, t.data, static_cast<size_t>(t.bytes)) != 0, name.c_str());  // not the same words
            ++f16_tensors;
            if (t.shape.size() == 2) f16_matrix_bytes += t.bytes;
            for (int64_t i = 0; i < h->bytes; i += 2) {
                uint16_t w;
                std::memcpy(&w, h->data + i, 2);
                if ((w & 0x7C00) == 0 && (w & 0x3FF) != 0) ++subnormals;
            }
        }
        // embedding, lm_head, final norm; 4 x 2 layer norms; 2 Lightning layers x 3 (q, k, o norms);
        // o_gate of the 2 sparse layers and z_proj of the 2 Lightning ones (the SALA skips)
        QCOMPARE(f16_tensors, int64_t(21));
        qInfo("fp16 subnormal values in the float16 checkpoint: %lld", static_cast<long long>(subnormals));
        QVERIFY(subnormals > 0);

        auto same_weights = [](const ModelWeights& a, const ModelWeights& b) {
            const auto am = a.matrices(), bm = b.matrices();
            QCOMPARE(am.size(), bm.size());
            for (size_t i = 0; i < am.size(); ++i) {
                QCOMPARE(am[i]->quantized(), bm[i]->quantized());
                QCOMPARE(am[i]->rows, bm[i]->rows);
                if (am[i]->quantized() || am[i]->rows == 0) continue;
                QVERIFY(am[i]->converted && !bm[i]->converted);
                QVERIFY2(std::memcmp(am[i]->data, bm[i]->data, static_cast<size_t>(am[i]->rows * am[i]->cols * 2)) == 0,
                         qPrintable(QString("matrix %1 differs from the twin's").arg(i)));
            }
            QVERIFY(a.final_norm == b.final_norm);
            for (size_t l = 0; l < a.layers.size(); ++l) {
                const LayerWeights &x = a.layers[l], &y = b.layers[l];
                QVERIFY(x.input_norm == y.input_norm && x.post_norm == y.post_norm && x.q_norm == y.q_norm && x.k_norm == y.k_norm &&
                        x.o_norm == y.o_norm);
            }
        };
        same_weights(half->weights(), twin->weights());
        if (QTest::currentTestFailed()) return;
        QCOMPARE(half->weights().converted_bytes(), f16_matrix_bytes);
        QCOMPARE(twin->weights().converted_bytes(), int64_t(0));
        QVERIFY(half->fingerprint() != twin->fingerprint());  // a saved state stays tied to its own files

        auto expect_same_logits = [](std::shared_ptr<const Model> a, std::shared_ptr<const Model> b, Precision precision, int64_t n) {
            const auto tokens = test::random_tokens(n, a->config().vocab_size, 7);
            const std::vector<int64_t> positions = {0, 1, n / 2, n - 2, n - 1};
            auto ea = test::make_engine(a, precision);
            auto eb = test::make_engine(b, precision);
            const auto ra = test::run_fresh(*ea, tokens, 64, n - 3, positions);
            const auto rb = test::run_fresh(*eb, tokens, 64, n - 3, positions);
            for (int64_t p : positions) {
                QVERIFY(test::all_finite(ra.at(p)));
                QVERIFY2(ra.at(p) == rb.at(p), qPrintable(QString("position %1: max |d| %2").arg(p).arg(test::max_abs_diff(ra.at(p), rb.at(p)))));
            }
        };
        expect_same_logits(half, twin, Precision::bf16, 200);
        expect_same_logits(half, twin, Precision::fp32, 40);

        // Tied embeddings: no lm_head tensor, the (converted) embedding serves as both.
        for (const std::string& dir : {hdir, bdir}) {
            auto ts = read_tensors(dir);
            std::erase_if(ts, [](const Tensor& t) { return t.name == "lm_head.weight"; });
            rewrite(dir, ts);
            std::string cfg = test::read_all(dir + "/config.json").toStdString();
            const std::string key = "\"tie_word_embeddings\": false";
            QVERIFY(cfg.find(key) != std::string::npos);
            cfg.replace(cfg.find(key), key.size(), "\"tie_word_embeddings\": true");
            QVERIFY(test::write_all(dir + "/config.json", QByteArray::fromStdString(cfg)));
        }
        auto half_tied = test::load_model(hdir);
        auto twin_tied = test::load_model(bdir);
        QVERIFY(half_tied->weights().tied_embeddings);
        QVERIFY(half_tied->weights().lm_head.converted && half_tied->weights().lm_head.data == half_tied->weights().embed.data);
        same_weights(half_tied->weights(), twin_tied->weights());
        if (QTest::currentTestFailed()) return;
        expect_same_logits(half_tied, twin_tied, Precision::bf16, 40);

        // quire model-info names the dtype and what the conversion costs.
        const std::string report = format_model_report(inspect_model(hdir));
        QVERIFY2(report.find("dtype: float16 (the engines compute in bf16") != std::string::npos &&
                     report.find(format_bytes(half_tied->weights().converted_bytes()) + " of copies in host memory") != std::string::npos &&
                     report.find("4 left in float16 by the dynamic rules") != std::string::npos &&
                     report.find("validation: OK") != std::string::npos,
                 report.c_str());
    }

    // The tool refuses what it cannot write.
    void float16_tool_options_are_checked() {
        tools::TinyModelOptions o = tiny_options(fresh("bad-dtype"), {});
        o.dtype = "float32";
        QVERIFY(tools::write_tiny_model(o).message().find("--dtype must be bfloat16 or float16, got float32") != std::string::npos);
        o.dtype = "float16";
        o.gptq = {4, 32, true, false, false, "sala", true};
        QVERIFY(tools::write_tiny_model(o).message().find("cannot be combined with --dtype float16") != std::string::npos);
    }

    // The reference (tools/reference/gptq.py) reads the tool's packing to exactly the tool's values.
    void reference_dequantizes_tool_models_exactly_data() {
        add_model_columns();
        QTest::newRow("4-bit asym g64 desc_act gptq_v2") << 4 << 64 << false << true << true << "";
        QTest::newRow("8-bit sym g32 desc_act gptq, mixed dynamic") << 8 << 32 << true << true << false << "mixed";
    }
    void reference_dequantizes_tool_models_exactly() {
        tools::TinyGptqOptions g = fetch_model_options();
        const std::string qdir = fresh("gptq"), tool_twin = fresh("twin"), ref_twin = fresh("reftwin");
        write_model(tiny_options(qdir, g));
        g.dequantized_twin = true;
        write_model(tiny_options(tool_twin, g));
        run_reference({"dequantize", QString::fromStdString(qdir), QString::fromStdString(ref_twin)});
        expect_same_tensors(ref_twin, tool_twin);
    }

    // A GPTQ model quantized by the reference loads, and the engine on it agrees exactly (bf16 mode)
    // with the engine on the reference's own dequantized twin.
    void reference_quantized_model_runs_like_its_twin() {
        const std::string src = fresh("bf16"), qdir = fresh("refgptq"), twin = fresh("reftwin");
        write_model(tiny_options(src, {}));
        run_reference({"quantize", QString::fromStdString(src), QString::fromStdString(qdir), "--bits", "4", "--group-size",
                       "32", "--asym", "--desc-act", "--dynamic", "sala"});
        run_reference({"dequantize", QString::fromStdString(qdir), QString::fromStdString(twin)});
        auto quantized = test::load_model(qdir);
        QVERIFY(quantized->weights().quantized());
        QCOMPARE(quantized->weights().checkpoint->skipped_linear_count(), int64_t(4));
        QVERIFY(quantized->weights().layers[0].mlp_down.gptq.g_idx != nullptr);
        auto reference_twin = test::load_model(twin);
        const auto tokens = test::random_tokens(200, quantized->config().vocab_size, 3);
        const std::vector<int64_t> positions = {0, 64, 150, 199};
        auto eq = test::make_engine(quantized, Precision::bf16);
        auto et = test::make_engine(reference_twin, Precision::bf16);
        const auto a = test::run_fresh(*eq, tokens, 0, 190, positions);
        const auto b = test::run_fresh(*et, tokens, 0, 190, positions);
        for (int64_t p : positions)
            QVERIFY2(a.at(p) == b.at(p), qPrintable(QString("position %1: max |d| %2").arg(p).arg(test::max_abs_diff(a.at(p), b.at(p)))));
    }

    void registered_tiny_models_load() {
        for (const char* name : {"tiny-a-gptq4-sala", "tiny-a-gptq4-asym", "tiny-a-gptq8-act", "tiny-a-gptq8-asym", "tiny-a-gptq4-mixed",
                                 "tiny-a-gptq4-g128"}) {
            auto m = Model::load(test::tiny_model(name));
            QVERIFY2(m.is_ok(), (std::string(name) + ": " + m.status().message()).c_str());
            QVERIFY(m.value()->weights().quantized());
        }
        auto m = test::load_model(test::tiny_model("tiny-a-gptq4-sala"));
        const auto& ck = *m->weights().checkpoint;
        QCOMPARE(ck.skipped_linear_count(), int64_t(4));         // every layer's o_gate / z_proj
        QCOMPARE(static_cast<int64_t>(ck.gptq_modules().size()), int64_t(28));
        const LayerWeights& l1 = m->weights().layers[1];
        QVERIFY(!l1.gate.quantized() && l1.gate.data);             // z_proj left in bf16
        QVERIFY(l1.mlp_up.quantized() && !l1.mlp_up.data);
        QCOMPARE(l1.mlp_up.gptq.bits, 4);
        QCOMPARE(l1.mlp_up.gptq.group_size, int64_t(32));
        QCOMPARE(l1.mlp_up.gptq.zero_offset, 1);
        QVERIFY(l1.mlp_up.gptq.g_idx == nullptr);                  // desc_act off: contiguous groups
        auto act = test::load_model(test::tiny_model("tiny-a-gptq8-act"));
        QVERIFY(act->weights().layers[0].q.gptq.g_idx != nullptr);  // a permuted g_idx is kept
        QCOMPARE(act->weights().layers[0].q.gptq.group_size, int64_t(64));
        // quire model-info reports the quantization.
        const std::string report = format_model_report(inspect_model(test::tiny_model("tiny-a-gptq4-sala")));
        QVERIFY2(report.find("quantization: GPTQ 4-bit, group_size 32, sym, desc_act off, checkpoint_format gptq, 2 dynamic rule(s)") !=
                     std::string::npos, report.c_str());
        QVERIFY2(report.find("quantized layers: 28 linear layers in GPTQ") != std::string::npos &&
                     report.find("4 left in bf16 by the dynamic rules") != std::string::npos && report.find("validation: OK") != std::string::npos,
                 report.c_str());
        // The CUDA backend runs GPTQ models (test_gpu_engine compares it with the CPU engine on all five);
        // without a device it says so, not that it cannot read the quantization.
        auto e = create_engine(m, Backend::cuda, EngineOptions{});
        if (!e.is_ok()) QVERIFY2(e.status().message().find("GPTQ") == std::string::npos, e.status().message().c_str());
    }

    void inconsistent_tensor_is_named_data() {
        QTest::addColumn<QString>("damage");
        QTest::addColumn<QString>("expected");
        const QString up = "model.layers.1.mlp.up_proj";
        QTest::newRow("qweight F32") << "qweight-f32" << up + ".qweight' has dtype F32 but I32 is required";
        QTest::newRow("qweight I16") << "qweight-i16" << up + ".qweight' has dtype I16 but I32 is required";
        QTest::newRow("scales BF16") << "scales-bf16" << up + ".scales' has dtype BF16 but F16 is required";
        QTest::newRow("qzeros shape") << "qzeros-shape" << up + ".qzeros' has shape [8, 16] but 4-bit GPTQ with group_size 32 implies [4, 32]";
        QTest::newRow("g_idx missing") << "g_idx-missing" << "missing tensor '" + up + ".g_idx' (I32 [128]: " + up + " is quantized to 4 bits)";
        QTest::newRow("g_idx too large") << "g_idx-99" << up + ".g_idx': g_idx[37] = 99 is not a group (0 .. 3)";
        QTest::newRow("g_idx negative") << "g_idx-neg" << up + ".g_idx': g_idx[5] = -1 is not a group (0 .. 3)";
        QTest::newRow("infinite scale") << "scale-inf" << up + ".scales': scales[2, 17] is infinite";
        QTest::newRow("NaN scale") << "scale-nan" << up + ".scales': scales[0, 3] is NaN";
        QTest::newRow("bf16 weight of a quantized module") << "extra-weight"
            << "tensor '" + up + ".weight' is a bf16 weight, but quantization_config quantizes " + up + " (4-bit)";
        QTest::newRow("skipped module stored quantized") << "skipped-quantized"
            << "module model.layers.1.self_attn.z_proj is left in bf16 by dynamic rule \"-:.*self_attn\\.z_proj.*\", so it must be stored as 'model.layers.1.self_attn.z_proj.weight'";
        QTest::newRow("misaligned") << "misaligned" << ".qweight' in model.safetensors is not aligned to 4 bytes in the file";
        QTest::newRow("huge in_features") << "huge-hidden" << "tensor 'model.embed_tokens.weight' has shape [1024, 128] but the config implies [1024, 1099511627776]";
    }
    void inconsistent_tensor_is_named() {
        QFETCH(QString, damage);
        QFETCH(QString, expected);
        const std::string dir = fresh("damaged");
        write_model(tiny_options(dir, {4, 32, true, false, false, "sala", false}));
        QVERIFY(Model::load(dir).is_ok());
        auto ts = read_tensors(dir);
        const std::string up = "model.layers.1.mlp.up_proj";
        const std::string d = damage.toStdString();
        if (d == "qweight-f32") find(ts, up + ".qweight")->dtype = DType::f32;
        if (d == "qweight-i16") {
            Tensor* t = find(ts, up + ".qweight");
            t->dtype = DType::i16;
            t->shape[1] *= 2;
        }
        if (d == "scales-bf16") find(ts, up + ".scales")->dtype = DType::bf16;
        if (d == "qzeros-shape") find(ts, up + ".qzeros")->shape = {8, 16};
        if (d == "g_idx-missing") std::erase_if(ts, [&](const Tensor& t) { return t.name == up + ".g_idx"; });
        if (d == "g_idx-99") put_i32(find(ts, up + ".g_idx")->bytes, 37, 99);
        if (d == "g_idx-neg") put_i32(find(ts, up + ".g_idx")->bytes, 5, -1);
        auto put_f16 = [](std::string& bytes, int64_t index, uint16_t h) { std::memcpy(bytes.data() + 2 * index, &h, 2); };
        if (d == "scale-inf") put_f16(find(ts, up + ".scales")->bytes, 2 * 256 + 17, 0x7C00);
        if (d == "scale-nan") put_f16(find(ts, up + ".scales")->bytes, 3, 0xFE01);
        if (d == "extra-weight") ts.push_back({up + ".weight", DType::bf16, {256, 128}, std::string(256 * 128 * 2, '\0')});
        if (d == "skipped-quantized")
            for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx"}) {
                Tensor copy = *find(ts, "model.layers.1.self_attn.q_proj" + std::string(part));
                copy.name = "model.layers.1.self_attn.z_proj" + std::string(part);
                ts.push_back(copy);
            }
        if (d == "misaligned") ts.insert(ts.begin(), Tensor{"aaa.pad", DType::u8, {2}, std::string(2, '\0')});
        if (d == "huge-hidden") {
            const std::string cfg_path = dir + "/config.json";
            std::string cfg = test::read_all(cfg_path).toStdString();
            const std::string key = "\"hidden_size\": 128";
            cfg.replace(cfg.find(key), key.size(), "\"hidden_size\": 1099511627776");
            QVERIFY(test::write_all(cfg_path, QByteArray::fromStdString(cfg)));
        }
        rewrite(dir, ts);
        expect_load_error(dir, expected.toStdString());
    }
};

QTEST_GUILESS_MAIN(TestGptq)
#include "test_gptq.moc"
