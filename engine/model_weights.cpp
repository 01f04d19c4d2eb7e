#include "model_weights.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>

#include "bf16.h"
#include "model_tensors.h"
#include "quant/gptq_catalogue.h"

namespace quire {

namespace {
// Where a tensor's bytes come from: the mapped checkpoint, or nothing (a synthetic model, whose
// shapes come from the tensor catalogue).
// A quantized module's tensors come from Checkpoint::find_gptq (null for a synthetic model).
struct Lookup {
    std::function<const TensorRef*(const std::string&)> tensor;
    const Checkpoint* gptq = nullptr;
    const QuantConfig* synthetic_gptq = nullptr;  // a synthetic model of a quantized configuration
    std::vector<std::vector<uint16_t>>* converted = nullptr;  // where F16 matrices' bf16 copies go
    const TensorRef* operator()(const std::string& name) const { return tensor(name); }
};

// An F16 matrix as bf16, into a buffer the weights keep (safetensors stores little-endian, as
// the hosts this builds for are).
const uint16_t* convert_to_bf16(const TensorRef& t, std::vector<std::vector<uint16_t>>& buffers) {
    const auto n = static_cast<size_t>(t.bytes / 2);
    std::vector<uint16_t> out(n);
    for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = fp16_to_bf16(h);
    }
    buffers.push_back(std::move(out));
    return buffers.back().data();  // a moved vector keeps its storage: later push_backs leave it in place
}

MatrixRef matrix(const Lookup& find, const std::string& name) {
    if (find.gptq)
        if (const GptqTensors* q = find.gptq->find_gptq(linear_module_name(name))) {
            MatrixRef m;
            m.rows = q->out;
            m.cols = q->in;
            m.gptq = *q;
            return m;
        }
    const TensorRef* t = find(name);
    if (!t) return {};
    if (find.synthetic_gptq && name.rfind("model.layers.", 0) == 0) {
        // The shapes a GPTQ checkpoint of this configuration would hold, without words: the backend
        // draws them (quire-bench's INT4/INT8 runs of the real 9B configuration).
        const ModuleQuant q = find.synthetic_gptq->for_module(linear_module_name(name));
        if (q.quantized) {
            MatrixRef m;
            m.rows = t->shape[0];
            m.cols = t->shape[1];
            m.gptq.in = m.cols;
            m.gptq.out = m.rows;
            m.gptq.bits = q.bits;
            m.gptq.group_size = effective_group_size(q, m.cols);
            m.gptq.zero_offset = find.synthetic_gptq->zero_offset();
            m.gptq.sym = q.sym;
            m.gptq.synthetic = true;
            return m;
        }
    }
    MatrixRef m;
    m.rows = t->shape[0];
    m.cols = t->shape[1];
    if (t->dtype == DType::f16 && t->data && find.converted) {
        m.data = convert_to_bf16(*t, *find.converted);
        m.converted = true;
    } else {
        m.data = reinterpret_cast<const uint16_t*>(t->data);
    }
    return m;
}

std::vector<float> vector_f32(const Lookup& find, const std::string& name) {
    const TensorRef* t = find(name);
    if (!t) return {};
    std::vector<float> v(static_cast<size_t>(t->shape[0]), 1.0f);  // no bytes: ones
    if (!t->data) return v;
    for (size_t i = 0; i < v.size(); ++i) {
        if (t->dtype == DType::f32) {
            std::memcpy(&v[i], t->data + 4 * i, 4);
        } else {
            uint16_t b;
            std::memcpy(&b, t->data + 2 * i, 2);
            // An F16 norm goes through bf16 as its matrices do: the model computes as if the
            // checkpoint had been converted to bfloat16 first.
            v[i] = bf16_to_float(t->dtype == DType::f16 ? fp16_to_bf16(b) : b);
        }
    }
    return v;
}

ModelWeights bind_with(const Lookup& ck, const ModelConfig& config) {
    ModelWeights w;
    w.embed = matrix(ck, "model.embed_tokens.weight");
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
        LayerWeights lw;
        auto name = [&](const char* s) { return layer_tensor_name(l, s); };
        lw.kind = config.mixer_types[static_cast<size_t>(l)];
        lw.input_norm = vector_f32(ck, name("input_layernorm.weight"));
        lw.post_norm = vector_f32(ck, name("post_attention_layernorm.weight"));
        lw.q = matrix(ck, name("self_attn.q_proj.weight"));
        lw.k = matrix(ck, name("self_attn.k_proj.weight"));
        lw.v = matrix(ck, name("self_attn.v_proj.weight"));
        lw.o = matrix(ck, name("self_attn.o_proj.weight"));
        if (lw.kind == MixerType::sparse) {
            lw.gate = matrix(ck, name("self_attn.o_gate.weight"));
        } else {
            lw.gate = matrix(ck, name("self_attn.z_proj.weight"));
            lw.q_norm = vector_f32(ck, name("self_attn.q_norm.weight"));
            lw.k_norm = vector_f32(ck, name("self_attn.k_norm.weight"));
            lw.o_norm = vector_f32(ck, name("self_attn.o_norm.weight"));
        }
        lw.mlp_gate = matrix(ck, name("mlp.gate_proj.weight"));
        lw.mlp_up = matrix(ck, name("mlp.up_proj.weight"));
        lw.mlp_down = matrix(ck, name("mlp.down_proj.weight"));
        w.layers.push_back(std::move(lw));
    }
    w.final_norm = vector_f32(ck, "model.norm.weight");
    w.lm_head = config.tie_word_embeddings ? w.embed : matrix(ck, "lm_head.weight");
    w.tied_embeddings = config.tie_word_embeddings;
    return w;
}
}  // namespace

ModelWeights bind_weights(std::shared_ptr<const Checkpoint> checkpoint, const ModelConfig& config) {
    auto converted = std::make_shared<std::vector<std::vector<uint16_t>>>();
    ModelWeights w = bind_with({[&](const std::string& name) { return checkpoint->find(name); }, checkpoint.get(), nullptr,
                                converted.get()},
                               config);
    w.checkpoint = std::move(checkpoint);
    if (!converted->empty()) w.converted = std::move(converted);
    return w;
}

int64_t ModelWeights::converted_bytes() const {
    int64_t bytes = 0;
    if (converted)
        for (const auto& b : *converted) bytes += static_cast<int64_t>(b.size()) * 2;
    return bytes;
}

std::vector<const MatrixRef*> ModelWeights::matrices() const {
    std::vector<const MatrixRef*> all = {&embed};
    if (!tied_embeddings) all.push_back(&lm_head);
    for (const LayerWeights& l : layers)
        for (const MatrixRef* m : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.mlp_gate, &l.mlp_up, &l.mlp_down}) all.push_back(m);
    return all;
}

bool ModelWeights::quantized() const {
    const auto all = matrices();
    return std::any_of(all.begin(), all.end(), [](const MatrixRef* m) { return m->quantized(); });
}

ModelWeights synthetic_weights(const ModelConfig& config) {
    std::map<std::string, TensorRef> shapes;
    for (const TensorSpec& spec : expected_tensors(config)) {
        TensorRef t;
        t.shape = spec.shape;
        t.dtype = DType::bf16;
        t.data = nullptr;
        shapes.emplace(spec.name, t);
    }
    return bind_with({[&](const std::string& name) -> const TensorRef* {
        auto it = shapes.find(name);
        return it == shapes.end() ? nullptr : &it->second;
    }, nullptr, config.quantization ? &*config.quantization : nullptr}, config);
}

}  // namespace quire
