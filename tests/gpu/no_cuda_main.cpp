// Stands in for every gpu-labelled test when the build has no CUDA: reports the skip and why.
#include <cstdio>

int main() {
    std::printf("SKIPPED: this build has no CUDA (nvcc was not found at configure time)\n");
    return 77;
}
