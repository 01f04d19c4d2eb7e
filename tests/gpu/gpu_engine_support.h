#pragma once
// The CUDA engine of a model for the GPU tests, with default options; a test that cannot make one
// stops with the reason.
#include <QtGlobal>

#include <memory>

#include "engine.h"

namespace quire::test {

inline std::unique_ptr<Engine> cuda_engine(std::shared_ptr<const Model> m) {
    auto e = create_engine(std::move(m), Backend::cuda, {});
    if (!e) qFatal("%s", e.status().message().c_str());
    return std::move(e.value());
}

}  // namespace quire::test
