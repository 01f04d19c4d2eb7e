#pragma once
// Decode steps as CUDA graphs. A step's launches are recorded by stream capture and replayed as
// graphs: one graph per segment of layers (closes_segment), each launched as soon as it is
// recorded, so the GPU runs one segment while the host records the next. Every segment keeps its
// instantiated graph between steps and brings it up to date with cudaGraphExecUpdate (kernel
// parameters such as positions, lengths and cache addresses change every step, the kernels do not),
// instantiating again only when the launches themselves change (a C1/C2 entry completed, another
// regime, a different split).
// Recording costs the host about what launching did; the GPU gets one submission per segment and no
// gaps between a segment's kernels.
//
// Capture rules the step obeys: no allocation (plan_step allocates before), no synchronisation and
// no copy from pageable memory inside (the step's inputs are in pinned memory and copied before
// capture; logits and the sampled token are copied back after), cuBLAS with its own workspace
// (cublasSetWorkspace), capture mode thread-local (another thread's allocation cannot break it).

#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace quire::cuda {

class DecodeGraph {
public:
    DecodeGraph();  // enabled unless QUIRE_CUDA_GRAPH=0
    ~DecodeGraph();
    DecodeGraph(const DecodeGraph&) = delete;
    DecodeGraph& operator=(const DecodeGraph&) = delete;

    bool enabled() const { return enabled_; }
    void set_enabled(bool on) { enabled_ = on; }
    // Turns graphs off for the rest of the engine's life; the reason is printed once.
    void disable(const std::string& why);

    // Whether the segment being recorded ends before layer `next_layer` (> 0). Segments double in
    // length (layers 0, 1, 2-3, 4-7, ...): the GPU still runs each one while the host records the
    // next, twice as long (recording a layer costs the host ~15 us, running it the GPU 90-160 us),
    // and a 32-layer step is 6 graphs instead of 32. At a boundary the first kernel of the next graph
    // cannot start early (programmatic launch works inside a graph only).
    // QUIRE_CUDA_GRAPH_SEGMENTS=layer makes every layer a segment (to compare).
    bool closes_segment(int64_t next_layer) const { return per_layer_ || (next_layer & (next_layer - 1)) == 0; }

    // Starts recording the launches on `stream`.
    cudaError_t begin(cudaStream_t stream);
    // Stops recording, updates (or instantiates) the executable graph of `segment` with what was
    // recorded, and launches it on `stream`.
    cudaError_t end_and_launch(cudaStream_t stream, int segment);
    // Stops a recording that failed and drops it.
    void abort(cudaStream_t stream);

    // Counters of the current step (reset by begin_step) and of the last one.
    void begin_step() {
        segments_ = 0, nodes_ = 0;
        if (timing_) step_start_ = Clock::now();
    }
    // Where the engine's forward() of a one-token step began (timing only).
    void mark_forward_start() {
        if (timing_) forward_start_ = Clock::now();
    }
    int segments_launched() const { return segments_; }
    int64_t nodes_launched() const { return nodes_; }
    // Instantiations since the engine started (an update that succeeds does not count).
    int64_t instantiations() const { return instantiations_; }
    // Updates refused with the same number of nodes (each followed by an instantiation).
    int64_t refused_updates() const { return refused_updates_; }

    // Where a step's time goes (QUIRE_CUDA_GRAPH_TIMING=1, a benchmark's diagnostic): events around
    // each segment's launch tell the GPU's time inside segments from the time it waited between
    // them for the host to record the next one.
    struct Timing {
        int64_t steps = 0;
        double host_s = 0;          // begin_step to the last segment's launch, on the host
        double first_launch_s = 0;  // begin_step to the first segment's launch
        double busy_s = 0;          // GPU time inside the segments
        double idle_s = 0;          // GPU time between one segment's end and the next one's start
        double before_s = 0;        // forward() entry to begin_step: the step's set-up on the host
        double wall_s = 0;          // forward() entry to its synchronisation returning
    };
    bool timing_enabled() const { return timing_; }
    // Adds the step just synchronised to the totals.
    void collect_timing();
    const Timing& timing() const { return timing_totals_; }
    void reset_timing() { timing_totals_ = {}; }

private:
    struct Exec {
        size_t nodes = 0;
        cudaGraphExec_t exec = nullptr;
    };
    static constexpr size_t kExecsPerSegment = 4;
    std::vector<std::vector<Exec>> execs_;  // per segment, most recently used first
    bool enabled_ = true;
    bool per_layer_ = false;
    bool reported_ = false;
    int segments_ = 0;
    int64_t nodes_ = 0;
    int64_t instantiations_ = 0;
    int64_t refused_updates_ = 0;

    using Clock = std::chrono::steady_clock;
    bool timing_ = false;
    std::vector<cudaEvent_t> events_;  // start and end of each segment of the step, in launch order
    Clock::time_point forward_start_, step_start_, first_launch_, last_launch_;
    Timing timing_totals_;
};

}  // namespace quire::cuda
