// Stats marshalling generated from the statistics lists of abi/js_abi.h: each function sets one
// property per statistic (its TypeScript name) on `o`.
#pragma once

#include <napi.h>

#include "fuse/session.h"
#include "fusedev/fuse_dev.h"
#include "vhost/stats.h"

namespace nydus::binding {

void SetSessionStats(Napi::Object o, const fuse::SessionStats& s);
void SetFuseDevStats(Napi::Object o, const fusedev::FuseDevStats& s);
void SetVirtioStats(Napi::Object o, const vhost::BackendStats& s);
void SetFopStats(Napi::Object o, const fuse::FopSnapshot& s);

}  // namespace nydus::binding
