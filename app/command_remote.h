#pragma once
// The CLI side of the remote backend: `quire config backend URL|local ...` and `quire ask` when a
// remote backend is configured (see remote/remote_backend.h).

#include "app_context.h"
#include "cli_args.h"
#include "remote/remote_backend.h"

namespace quire::cli {

// quire config backend URL [--model NAME] [--api-key-file F] | quire config backend local
int configBackendCommand(app::AppContext& ctx, const CommandLine& cl);
// quire ask through the configured remote backend; prints like the local ask.
int askRemoteCommand(app::AppContext& ctx, const app::LibraryRow& library, const QString& question, const app::AskOptions& options,
                     bool json, const app::RemoteBackendSettings& backend);

}  // namespace quire::cli
