// SPDX-License-Identifier: Apache-2.0
// The lab behind docs/benchmarks.md's 4-bit GEMV section (not part of the build; it needs only nvcc):
// the W4 decode GEMV variants at the 9B model's decode shapes, one token, weights cycled through
// ~768 MB, against a read-only kernel of the same bytes (the floor of one launch); outputs checked
// against the CUDA-core kernel and the tiled layout against the checkpoint's; then a whole step's
// W4 GEMVs (32 layers) replayed as one CUDA graph. LAB_SHAPE=gate runs one shape (for ncu).
//   nvcc -O3 -std=c++20 -arch=sm_90a -lineinfo -Ikernels tools/bench/gptq_gemv_lab.cu kernels/gptq_gemv.cu \
//        kernels/gptq_gemv_mma.cu kernels/gptq_dequant.cu kernels/device_limits.cu -o gptq_gemv_lab
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "gptq_gemv.h"
#include "gptq_gemv_mma.h"
#include "gptq_dequant.h"

using namespace quire::kernels;

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { std::printf("CUDA %s at %d\n", cudaGetErrorString(e), __LINE__); std::exit(1); } } while (0)

struct Shape { const char* name; int64_t in; std::vector<int64_t> outs; };

int64_t layer_bytes(int64_t in, int64_t out) { return in / 8 * out * 4 + (in / 128) * out / 8 * 4 + (in / 128) * out * 2; }

__global__ void fill(uint32_t* p, int64_t n, uint32_t seed) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed; h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15; p[i] = h;
    }
}
__global__ void fill_half(__half* p, int64_t n, uint32_t seed) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed; h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
        p[i] = __float2half(0.002f + (h % 1000) * 1e-5f);
    }
}
__global__ void fill_bf(__nv_bfloat16* p, int64_t n, uint32_t seed) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed; h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
        p[i] = __float2bfloat16(((int)(h % 2001) - 1000) * 1e-3f);
    }
}

__global__ void read_floor(const uint4* p, int64_t n, uint32_t* sink) {
    uint32_t acc = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x * 4) {
        uint4 v[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) { int64_t j = i + (int64_t)u * gridDim.x * blockDim.x; v[u] = j < n ? __ldcs(p + j) : make_uint4(0,0,0,0); }
#pragma unroll
        for (int u = 0; u < 4; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    if (acc == 0x12345678u) *sink = acc;
}
struct Copy { std::vector<GptqGemvLayer> layers; };

int main() {
    int dev = 0; CK(cudaSetDevice(dev));
    cudaStream_t st; CK(cudaStreamCreate(&st));
    std::vector<Shape> shapes = {{"lightning qkv 4096->3x4096", 4096, {4096, 4096, 4096}},
                                 {"o 4096->4096", 4096, {4096}},
                                 {"gate/up 4096->2x16384", 4096, {16384, 16384}},
                                 {"down 16384->4096", 16384, {4096}},
                                 {"sparse qkv 4096->4096+256+256", 4096, {4096, 256, 256}}};
    // copy floor
    {
        size_t bytes = size_t(1) << 30; void *a, *b; CK(cudaMalloc(&a, bytes)); CK(cudaMalloc(&b, bytes));
        cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st);
        cudaEventRecord(e0, st); for (int i = 0; i < 10; ++i) cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st); cudaEventRecord(e1, st);
        cudaEventSynchronize(e1); float ms; cudaEventElapsedTime(&ms, e0, e1);
        std::printf("copy: %.2f TB/s (read+write)\n", 2.0 * bytes * 10 / (ms / 1e3) / 1e12);
        cudaFree(a); cudaFree(b);
    }
    __nv_bfloat16* x; CK(cudaMalloc(&x, 8 * 16384 * 2)); fill_bf<<<64, 256, 0, st>>>(x, 8 * 16384, 7);
    __nv_bfloat16 *y, *y2; CK(cudaMalloc(&y, 8 * 40000 * 2)); CK(cudaMalloc(&y2, 8 * 40000 * 2));
    GptqGemvScratch scr;
    CK(cudaMalloc(&scr.partials, 8 * 8 * 40000 * 4)); scr.partial_floats = 8 * 8 * 40000;
    CK(cudaMalloc(&scr.tickets, 4096 * 4)); CK(cudaMemset(scr.tickets, 0, 4096 * 4)); scr.ticket_count = 4096;
    struct Variant { std::string name; std::function<cudaError_t(const GptqGemvLayer*, int, int)> run; };
    std::vector<Variant> variants = {
        {"mma split4 occ4", [&](const GptqGemvLayer* l, int n, int t) { return launch_gptq_gemv_mma(l, n, (const uint16_t*)x, t, st, &scr, 4, 4); }},
        // The engine's fused SwiGLU for gate/up (two layers of one width), occ4 (spills) or occ3.
        {"swiglu occ4", [&](const GptqGemvLayer* l, int n, int t) {
             if (n == 2 && l[0].weights.out == l[1].weights.out) return launch_gptq_gemv_mma_swiglu(l[0].weights, l[1].weights, (const uint16_t*)x, t, l[0].out, st, &scr, 4);
             return launch_gptq_gemv_mma(l, n, (const uint16_t*)x, t, st, &scr, 4, 4); }},
        {"swiglu occ3", [&](const GptqGemvLayer* l, int n, int t) {
             if (n == 2 && l[0].weights.out == l[1].weights.out) return launch_gptq_gemv_mma_swiglu(l[0].weights, l[1].weights, (const uint16_t*)x, t, l[0].out, st, &scr, 3);
             return launch_gptq_gemv_mma(l, n, (const uint16_t*)x, t, st, &scr, 4, 4); }},
    };
    auto with_tiling = [&](const GptqGemvLayer* l, int n, bool tiled) {
        static GptqGemvLayer tmp[4];
        for (int i = 0; i < n; ++i) { tmp[i] = l[i]; tmp[i].weights.tiled = tiled; }
        return (const GptqGemvLayer*)tmp;
    };
    std::vector<Variant> all;
    for (bool tiled : {true})
        for (auto& v : variants) {
            auto run = v.run;
            all.push_back({v.name + (tiled ? " tiled" : ""), [=](const GptqGemvLayer* l, int n, int t) { return run(with_tiling(l, n, tiled), n, t); }});
        }
    variants = all;
    for (int zero_offset : {1}) {
        for (const Shape& s : shapes) {
            if (getenv("LAB_SHAPE") && !strstr(s.name, getenv("LAB_SHAPE"))) continue;
            int64_t per = 0; for (int64_t o : s.outs) per += layer_bytes(s.in, o);
            const int copies = (int)std::max<int64_t>(2, (int64_t(768) << 20) / per);
            std::vector<Copy> cs(copies);
            std::vector<void*> mem;
            int64_t yoff = 0;
            for (int c = 0; c < copies; ++c) {
                yoff = 0;
                for (int64_t o : s.outs) {
                    GptqView v; v.in = s.in; v.out = o; v.bits = 4; v.group_size = 128; v.zero_offset = zero_offset;
                    int32_t *qw, *qz; __half* sc;
                    CK(cudaMalloc(&qw, s.in / 8 * o * 4)); CK(cudaMalloc(&qz, s.in / 128 * o / 8 * 4)); CK(cudaMalloc(&sc, s.in / 128 * o * 2));
                    fill<<<256, 256, 0, st>>>((uint32_t*)qw, s.in / 8 * o, 11 + c); fill<<<64, 256, 0, st>>>((uint32_t*)qz, s.in / 128 * o / 8, 5 + c);
                    fill_half<<<64, 256, 0, st>>>(sc, s.in / 128 * o, 3 + c);
                    mem.insert(mem.end(), {qw, qz, sc});
                    v.qweight = qw; v.qzeros = qz; v.scales = sc;
                    cs[c].layers.push_back({v, (uint16_t*)(y + yoff)});
                    yoff += o * 8;
                }
            }
            CK(cudaStreamSynchronize(st));
            std::printf("\n%s: %.2f MB per call, %d copies cycled\n", s.name, per / 1e6, copies);
            // correctness against the CUDA-core kernel, 1 and 3 tokens
            for (int tokens : {1, 3, 8}) {
                CK(launch_gptq_gemv_multi(cs[0].layers.data(), (int)s.outs.size(), (const uint16_t*)x, tokens, st, GptqGemvLoop::batched));
                CK(cudaMemcpyAsync(y2, y, 8 * 40000 * 2, cudaMemcpyDeviceToDevice, st));
                CK(launch_gptq_gemv_mma(cs[0].layers.data(), (int)s.outs.size(), (const uint16_t*)x, tokens, st, &scr));
                std::vector<__nv_bfloat16> a(8 * 40000), b(8 * 40000);
                CK(cudaMemcpyAsync(a.data(), y2, a.size() * 2, cudaMemcpyDeviceToHost, st));
                CK(cudaMemcpyAsync(b.data(), y, b.size() * 2, cudaMemcpyDeviceToHost, st));
                CK(cudaStreamSynchronize(st));
                double maxref = 0, maxdiff = 0; int64_t off = 0, bad = 0;
                for (int64_t o : s.outs) {
                    for (int64_t i = 0; i < o * tokens; ++i) {
                        double r = __bfloat162float(a[off + i]), m = __bfloat162float(b[off + i]);
                        maxref = std::max(maxref, std::fabs(r)); maxdiff = std::max(maxdiff, std::fabs(r - m));
                        if (std::fabs(r - m) > std::fabs(r) * 1.0 / 128 + 1e-6) ++bad;
                    }
                    off += o * 8;
                }
                std::printf("  tokens %d: mma vs cuda-core max|diff| %.3g of max|y| %.3g, %lld beyond 1 bf16 ulp\n", tokens, maxdiff, maxref, (long long)bad);
            }
            {
                std::vector<GptqGemvLayer> tl = cs[0].layers;
                std::vector<void*> tmem;
                for (auto& l : tl) {
                    int32_t* q; CK(cudaMalloc(&q, l.weights.in / 8 * l.weights.out * 4));
                    CK(launch_gptq_tile_qweight(l.weights.qweight, q, l.weights.in / 8, l.weights.out, st));
                    l.weights.qweight = q; l.weights.tiled = true; tmem.push_back(q);
                }
                for (int which = 0; which < 2; ++which) {
                    CK(launch_gptq_gemv_multi(cs[0].layers.data(), (int)s.outs.size(), (const uint16_t*)x, 3, st, GptqGemvLoop::batched));
                    CK(cudaMemcpyAsync(y2, y, 8 * 40000 * 2, cudaMemcpyDeviceToDevice, st));
                    if (which == 0) CK(launch_gptq_gemv_multi(tl.data(), (int)s.outs.size(), (const uint16_t*)x, 3, st, GptqGemvLoop::batched));
                    else CK(launch_gptq_gemv_mma(tl.data(), (int)s.outs.size(), (const uint16_t*)x, 3, st, &scr));
                    std::vector<uint16_t> a(8 * 40000), b(8 * 40000);
                    CK(cudaMemcpyAsync(a.data(), y2, a.size() * 2, cudaMemcpyDeviceToHost, st));
                    CK(cudaMemcpyAsync(b.data(), y, b.size() * 2, cudaMemcpyDeviceToHost, st));
                    CK(cudaStreamSynchronize(st));
                    int64_t diff = 0, off = 0;
                    for (int64_t o : s.outs) { for (int64_t i = 0; i < o * 3; ++i) diff += a[off + i] != b[off + i]; off += o * 8; }
                    std::printf("  tiled %s vs untiled cuda-core, 3 tokens: %lld outputs differ\n", which ? "mma" : "cuda-core", (long long)diff);
                }
                for (void* p : tmem) cudaFree(p);
            }
            {
                uint32_t* sink; CK(cudaMalloc(&sink, 4));
                char* big; CK(cudaMalloc(&big, (size_t)copies * per + 64));
                for (int ctas : {528, 1056}) {
                    const int iters = std::max(copies * 4, 200);
                    cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
                    cudaEventRecord(e0, st);
                    for (int i = 0; i < iters; ++i) {
                        read_floor<<<ctas, 256, 0, st>>>((const uint4*)(big + (size_t)(i % copies) * (per / 256 * 256)), per / 16, sink);
                    }
                    cudaEventRecord(e1, st); CK(cudaEventSynchronize(e1));
                    float ms; cudaEventElapsedTime(&ms, e0, e1);
                    const double us = ms * 1e3 / iters;
                    std::printf("  read floor %4d CTAs      : %7.2f us  %6.2f TB/s\n", ctas, us, per / (us * 1e-6) / 1e12);
                }
                cudaFree(sink); cudaFree(big);
            }
            for (auto& v : variants) {
                for (int tokens : {1}) {
                    const int iters = std::max(copies * 4, 200);
                    for (int i = 0; i < copies; ++i) CK(v.run(cs[i].layers.data(), (int)s.outs.size(), tokens));
                    cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
                    cudaEventRecord(e0, st);
                    for (int i = 0; i < iters; ++i) v.run(cs[i % copies].layers.data(), (int)s.outs.size(), tokens);
                    cudaEventRecord(e1, st); CK(cudaEventSynchronize(e1));
                    float ms; cudaEventElapsedTime(&ms, e0, e1);
                    const double us = ms * 1e3 / iters;
                    std::printf("  %-22s tokens %d: %7.2f us  %6.2f TB/s\n", v.name.c_str(), tokens, us, per / (us * 1e-6) / 1e12);
                }
            }
            for (void* p : mem) cudaFree(p);
        }
    }
    // A whole INT4 decode's GEMVs (24 Lightning + 8 sparse layers, distinct weights), graph-captured.
    {
        if (getenv("LAB_SHAPE")) return 0;
        std::printf("\nwhole decode step of GEMVs (32 layers, W4 only), graph replay:\n");
        struct L { std::vector<GptqGemvLayer> qkv, o, gu, down; };
        std::vector<L> ls(32); std::vector<void*> mem; int64_t total = 0;
        auto make = [&](int64_t in, int64_t o, int seed) {
            GptqView v; v.in = in; v.out = o; v.bits = 4; v.group_size = 128; v.zero_offset = 1;
            int32_t *qw, *qz; __half* sc;
            CK(cudaMalloc(&qw, in / 8 * o * 4)); CK(cudaMalloc(&qz, in / 128 * o / 8 * 4)); CK(cudaMalloc(&sc, in / 128 * o * 2));
            fill<<<256, 256, 0, st>>>((uint32_t*)qw, in / 8 * o, seed); fill<<<64, 256, 0, st>>>((uint32_t*)qz, in / 128 * o / 8, seed + 1);
            fill_half<<<64, 256, 0, st>>>(sc, in / 128 * o, seed + 2);
            mem.insert(mem.end(), {qw, qz, sc}); total += layer_bytes(in, o);
            v.qweight = qw; v.qzeros = qz; v.scales = sc; return v;
        };
        for (int l = 0; l < 32; ++l) {
            const bool sparse = l % 4 == 0;
            ls[l].qkv = {{make(4096, 4096, l * 10), (uint16_t*)y}, {make(4096, sparse ? 256 : 4096, l * 10 + 3), (uint16_t*)(y + 4096)},
                         {make(4096, sparse ? 256 : 4096, l * 10 + 5), (uint16_t*)(y + 8192)}};
            ls[l].o = {{make(4096, 4096, l * 10 + 7), (uint16_t*)y}};
            ls[l].gu = {{make(4096, 16384, l * 10 + 8), (uint16_t*)y}, {make(4096, 16384, l * 10 + 9), (uint16_t*)(y + 16384)}};
            ls[l].down = {{make(16384, 4096, l * 10 + 11), (uint16_t*)y}};
        }
        CK(cudaStreamSynchronize(st));
        for (auto& v : variants) {
            cudaGraph_t g; cudaGraphExec_t ge;
            CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
            for (auto& l : ls) {
                CK(v.run(l.qkv.data(), 3, 1)); CK(v.run(l.o.data(), 1, 1)); CK(v.run(l.gu.data(), 2, 1)); CK(v.run(l.down.data(), 1, 1));
            }
            CK(cudaStreamEndCapture(st, &g)); CK(cudaGraphInstantiate(&ge, g, 0));
            CK(cudaGraphLaunch(ge, st));
            cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
            cudaEventRecord(e0, st); for (int i = 0; i < 20; ++i) cudaGraphLaunch(ge, st); cudaEventRecord(e1, st); CK(cudaEventSynchronize(e1));
            float ms; cudaEventElapsedTime(&ms, e0, e1);
            std::printf("  %-22s %.3f ms per step, %.2f GB, %.2f TB/s\n", v.name.c_str(), ms / 20, total / 1e9, total / (ms / 20 * 1e-3) / 1e12);
            cudaGraphExecDestroy(ge); cudaGraphDestroy(g);
        }
        for (void* p : mem) cudaFree(p);
    }
    return 0;
}
