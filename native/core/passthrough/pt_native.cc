#include "passthrough/pt_native.h"

#include <utility>

namespace nydus::passthrough {
namespace {

class PassthroughNative final : public fuse::NativeFs {
 public:
  explicit PassthroughNative(std::unique_ptr<PassthroughFs> fs) : fs_(std::move(fs)) {}

  Outcome Handle(const fuse::DecodedRequest& d, transport::FuseRequest& req) override {
    const PassthroughFs::Outcome o = fs_->Handle(d, req);
    return Outcome{o.written, o.error, o.deferred};
  }
  void Forget(uint64_t nodeid, uint64_t nlookup) override { fs_->Forget(nodeid, nlookup); }
  bool Interrupt(uint64_t unique) override { return fs_->Interrupt(unique); }
  void Reset() override { fs_->Reset(); }
  int Syncfs() override { return fs_->Syncfs(); }
  uint64_t WantedInitFlags() const override { return fs_->WantedInitFlags(); }
  void OnInit(uint64_t kernel_flags, uint64_t granted_flags) override {
    fs_->OnInit(kernel_flags, granted_flags);
  }
  int RootEntry(fuse_entry_out* out) const override { return fs_->RootEntry(out); }
  void SetCompletion(CompleteFn fn) override { fs_->set_completion(std::move(fn)); }

 private:
  std::unique_ptr<PassthroughFs> fs_;
};

}  // namespace

std::shared_ptr<fuse::NativeFs> AsNativeFs(std::unique_ptr<PassthroughFs> fs) {
  if (fs == nullptr) return nullptr;
  return std::make_shared<PassthroughNative>(std::move(fs));
}

}  // namespace nydus::passthrough
