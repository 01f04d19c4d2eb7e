#include "cuda/decode_graph.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace quire::cuda {

DecodeGraph::DecodeGraph() {
    const char* env = std::getenv("QUIRE_CUDA_GRAPH");
    enabled_ = !(env && std::strcmp(env, "0") == 0);
    const char* segments = std::getenv("QUIRE_CUDA_GRAPH_SEGMENTS");
    per_layer_ = segments && std::strcmp(segments, "layer") == 0;
    const char* timing = std::getenv("QUIRE_CUDA_GRAPH_TIMING");
    timing_ = timing && std::strcmp(timing, "1") == 0;
}

DecodeGraph::~DecodeGraph() {
    for (auto& segment : execs_)
        for (Exec& e : segment) cudaGraphExecDestroy(e.exec);
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

void DecodeGraph::disable(const std::string& why) {
    enabled_ = false;
    if (reported_) return;
    reported_ = true;
    std::fprintf(stderr, "quire: CUDA graphs off for decoding (launching kernels one by one instead): %s\n", why.c_str());
}

cudaError_t DecodeGraph::begin(cudaStream_t stream) { return cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal); }

void DecodeGraph::abort(cudaStream_t stream) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
        cudaGraph_t graph = nullptr;
        cudaStreamEndCapture(stream, &graph);
        if (graph) cudaGraphDestroy(graph);
    }
    cudaGetLastError();  // the capture's error is reported by the caller; the stream stays usable
}

cudaError_t DecodeGraph::end_and_launch(cudaStream_t stream, int segment) {
    cudaGraph_t graph = nullptr;
    if (cudaError_t e = cudaStreamEndCapture(stream, &graph); e != cudaSuccess) {
        if (graph) cudaGraphDestroy(graph);
        return e;
    }
    size_t nodes = 0;
    if (cudaError_t e = cudaGraphGetNodes(graph, nullptr, &nodes); e != cudaSuccess) {
        cudaGraphDestroy(graph);
        return e;
    }
    if (execs_.size() <= static_cast<size_t>(segment)) execs_.resize(static_cast<size_t>(segment) + 1);
    std::vector<Exec>& cache = execs_[static_cast<size_t>(segment)];
    // An executable graph with the same launches takes the new parameters in place; one that
    // refuses them (another kernel, say) is dropped and a fresh one instantiated.
    bool updated = false;
    for (size_t i = 0; i < cache.size(); ++i) {
        if (cache[i].nodes != nodes) continue;
        cudaGraphExecUpdateResultInfo info{};
        if (cudaGraphExecUpdate(cache[i].exec, graph, &info) == cudaSuccess) {
            std::rotate(cache.begin(), cache.begin() + static_cast<std::ptrdiff_t>(i), cache.begin() + static_cast<std::ptrdiff_t>(i) + 1);
            updated = true;
        } else {
            cudaGetLastError();
            ++refused_updates_;
            cudaGraphExecDestroy(cache[i].exec);
            cache.erase(cache.begin() + static_cast<std::ptrdiff_t>(i));
        }
        break;
    }
    if (!updated) {
        Exec fresh;
        fresh.nodes = nodes;
        if (cudaError_t e = cudaGraphInstantiate(&fresh.exec, graph, 0); e != cudaSuccess) {
            cudaGraphDestroy(graph);
            return e;
        }
        ++instantiations_;
        if (cache.size() >= kExecsPerSegment) {
            cudaGraphExecDestroy(cache.back().exec);
            cache.pop_back();
        }
        cache.insert(cache.begin(), fresh);
    }
    cudaGraphDestroy(graph);  // the executable graph keeps what it needs
    const size_t mark = 2 * static_cast<size_t>(segments_);
    if (timing_) {
        while (events_.size() < mark + 2) {
            cudaEvent_t ev = nullptr;
            if (cudaError_t ce = cudaEventCreate(&ev); ce != cudaSuccess) return ce;
            events_.push_back(ev);
        }
        cudaEventRecord(events_[mark], stream);
    }
    const cudaError_t e = cudaGraphLaunch(cache.front().exec, stream);  // the one just brought up to date
    if (timing_) {
        cudaEventRecord(events_[mark + 1], stream);
        last_launch_ = Clock::now();
        if (segments_ == 0) first_launch_ = last_launch_;
    }
    if (e == cudaSuccess) {
        ++segments_;
        nodes_ += static_cast<int64_t>(nodes);
    }
    return e;
}

void DecodeGraph::collect_timing() {
    if (!timing_ || segments_ == 0) return;
    auto ms = [&](size_t a, size_t b) {
        float t = 0;
        return cudaEventElapsedTime(&t, events_[a], events_[b]) == cudaSuccess ? static_cast<double>(t) / 1e3 : 0.0;
    };
    Timing& t = timing_totals_;
    t.steps++;
    t.host_s += std::chrono::duration<double>(last_launch_ - step_start_).count();
    t.first_launch_s += std::chrono::duration<double>(first_launch_ - step_start_).count();
    t.before_s += std::chrono::duration<double>(step_start_ - forward_start_).count();
    t.wall_s += std::chrono::duration<double>(Clock::now() - forward_start_).count();
    for (size_t i = 0; i < static_cast<size_t>(segments_); ++i) {
        t.busy_s += ms(2 * i, 2 * i + 1);
        if (i > 0) t.idle_s += ms(2 * i - 1, 2 * i);
    }
}

}  // namespace quire::cuda
