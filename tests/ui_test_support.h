#pragma once
// What the window tests share: the quire helper program and waiting for the window to be ready.

#include <QtTest>

#include "main_window.h"
#include "test_support.h"

namespace quire::test {

inline QString helper() { return QString::fromStdString(quire_binary()); }

// Waits until the window has loaded its (demo) model and finished setting up the demo library.
inline void waitReady(ui::MainWindow& w) {
    QTRY_VERIFY_WITH_TIMEOUT(w.modelReady(), 30000);
    QTRY_VERIFY_WITH_TIMEOUT(!w.busy(), 30000);
}

}  // namespace quire::test
