# CUDA is optional: the project builds and tests without nvcc (CPU engine only).
#
# Architectures (docs/architecture.md, "GPU requirements and architectures"):
#   - development and CI builds: 90 (the H100/H200 the GPU tests run on), SASS and PTX;
#   - release builds (-DQUIRE_CUDA_ARCHITECTURES=release, packaging/build_release.sh): SASS for every
#     supported workstation and data-centre generation — sm_80 (A100), sm_86 (RTX 30, A6000),
#     sm_89 (RTX 40, 6000 Ada), sm_90 (H100/H200), sm_100 (B200), sm_120 (RTX 50, RTX PRO 6000
#     Blackwell) — plus PTX of the newest, which the driver compiles for anything newer still;
#   - any other CMake list through QUIRE_CUDA_ARCHITECTURES, or CMAKE_CUDA_ARCHITECTURES as usual.
# The cuda_architectures test checks that the built binaries carry exactly the configured list.
set(QUIRE_HAVE_CUDA OFF)
set(QUIRE_CI_CUDA_ARCHITECTURES "90" CACHE STRING "Architectures of development and CI builds")
set(QUIRE_RELEASE_CUDA_ARCHITECTURES "80-real;86-real;89-real;90-real;100-real;120-real;120-virtual"
    CACHE STRING "Architectures of release packages")
set(QUIRE_CUDA_ARCHITECTURES "" CACHE STRING
    "CUDA architectures: empty for QUIRE_CI_CUDA_ARCHITECTURES, 'release' for QUIRE_RELEASE_CUDA_ARCHITECTURES, or a CMake list")
if(QUIRE_ENABLE_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(QUIRE_CUDA_ARCHITECTURES STREQUAL "release")
      set(CMAKE_CUDA_ARCHITECTURES ${QUIRE_RELEASE_CUDA_ARCHITECTURES})
    elseif(QUIRE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES ${QUIRE_CUDA_ARCHITECTURES})
    elseif(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES ${QUIRE_CI_CUDA_ARCHITECTURES})
    endif()
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(QUIRE_HAVE_CUDA ON)
    message(STATUS "Quire: CUDA ${CUDAToolkit_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}")
  else()
    message(STATUS "Quire: nvcc not found, building the CPU engine only")
  endif()
endif()
