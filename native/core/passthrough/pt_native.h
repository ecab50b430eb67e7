// A PassthroughFs as a native filesystem of the FUSE session (fuse/native_fs.h): the session
// routes the requests of its node range to it inline, with no JavaScript on the path.
#pragma once

#include <memory>

#include "fuse/native_fs.h"
#include "passthrough/passthrough_fs.h"

namespace nydus::passthrough {

std::shared_ptr<fuse::NativeFs> AsNativeFs(std::unique_ptr<PassthroughFs> fs);

}  // namespace nydus::passthrough
