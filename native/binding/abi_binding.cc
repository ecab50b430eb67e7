// abiInfo(): every number the TypeScript side shares with the core, made from the lists of
// abi/js_abi.h and the real constants they define (never from literals here). TypeScript reads
// it once at load (src/native/abi.ts); test/unit/native-abi.test.ts compares it, key by key,
// with what TypeScript expects. Also the stats marshalling: one function per statistics group.
#include "abi_binding.h"

#include "abi/js_abi.h"
#include "fuse/ops.h"

namespace nydus::binding {
namespace {

double Num(uint64_t v) { return static_cast<double>(v); }

// { stride, fields: { name: slot, ... } }
#define NYDUS_SLOT_(Name, js) fields.Set(js, Num(Rec::k##Name));
#define NYDUS_RECORD_(R, js, FIELDS)              \
  {                                               \
    using Rec = abi::R##Record;                   \
    Napi::Object rec = Napi::Object::New(env);    \
    Napi::Object fields = Napi::Object::New(env); \
    FIELDS(NYDUS_SLOT_)                           \
    rec.Set("stride", Num(Rec::kStride));         \
    rec.Set("fields", fields);                    \
    records.Set(js, rec);                         \
  }

Napi::Object Records(Napi::Env env) {
  Napi::Object records = Napi::Object::New(env);
  NYDUS_ABI_RECORDS(NYDUS_RECORD_)
  return records;
}
#undef NYDUS_RECORD_
#undef NYDUS_SLOT_

Napi::Object Limits(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
#define NYDUS_LIMIT_(Name, js, type, value) o.Set(js, static_cast<double>(abi::k##Name));
  NYDUS_ABI_LIMITS(NYDUS_LIMIT_)
#undef NYDUS_LIMIT_
  return o;
}

Napi::Object Codes(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
#define NYDUS_CODE_(Name, js, value) o.Set(js, static_cast<double>(abi::k##Name));
  NYDUS_ABI_CODES(NYDUS_CODE_)
#undef NYDUS_CODE_
  return o;
}

// The names of a statistics list, in list order.
#define NYDUS_NAME_(name, js) names.Set(names.Length(), Napi::String::New(env, js));

Napi::Object StatNames(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  {
    Napi::Array names = Napi::Array::New(env);
    NYDUS_ABI_SESSION_COUNTERS(NYDUS_NAME_)
    NYDUS_ABI_SESSION_GAUGES(NYDUS_NAME_)
    NYDUS_ABI_READ_STATS(NYDUS_NAME_)
    o.Set("session", names);
  }
  {
    Napi::Array names = Napi::Array::New(env);
    NYDUS_ABI_FUSEDEV_STATS(NYDUS_NAME_)
    o.Set("fusedev", names);
  }
  {
    Napi::Array names = Napi::Array::New(env);
    NYDUS_ABI_VIRTIO_STATS(NYDUS_NAME_)
    o.Set("virtio", names);
  }
  {
    Napi::Array names = Napi::Array::New(env);
#define NYDUS_ARRAY_NAME_(name, js, n) NYDUS_NAME_(name, js)
    NYDUS_ABI_FOP_COUNTERS(NYDUS_NAME_)
    NYDUS_ABI_FOP_ARRAYS(NYDUS_ARRAY_NAME_)
#undef NYDUS_ARRAY_NAME_
    o.Set("fop", names);
  }
  return o;
}

// The statistics that are arrays, by group: { name: length }.
Napi::Object StatArrays(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Object fop = Napi::Object::New(env);
#define NYDUS_LENGTH_(name, js, n) fop.Set(js, Num(abi::k##n));
  NYDUS_ABI_FOP_ARRAYS(NYDUS_LENGTH_)
#undef NYDUS_LENGTH_
  o.Set("fop", fop);
  return o;
}

// The names of the counted operations, in counter order.
Napi::Array FopKinds(Napi::Env env) {
  Napi::Array names = Napi::Array::New(env);
#define NYDUS_KIND_(op, js) NYDUS_NAME_(op, js)
  NYDUS_ABI_FOP_KINDS(NYDUS_KIND_)
#undef NYDUS_KIND_
  return names;
}

// Their FUSE opcodes, in the same order.
Napi::Array FopOpcodes(Napi::Env env) {
  Napi::Array ops = Napi::Array::New(env);
  for (uint32_t op : abi::kFopOpcodes) ops.Set(ops.Length(), Num(op));
  return ops;
}
#undef NYDUS_NAME_

// FUSE opcodes by their spec name, from the opcode table the session dispatches with.
Napi::Object Opcodes(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  for (uint32_t op = 0; op < abi::kOpcodeTableSize; ++op) {
    const fuse::OpInfo* info = fuse::OpInfoOf(op);
    if (info != nullptr) o.Set(info->name, static_cast<double>(op));
  }
  return o;
}

Napi::Object AbiInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("napiVersion", NAPI_VERSION);
  o.Set("records", Records(env));
  o.Set("limits", Limits(env));
  o.Set("codes", Codes(env));
  o.Set("stats", StatNames(env));
  o.Set("statArrays", StatArrays(env));
  o.Set("fopKinds", FopKinds(env));
  o.Set("fopOpcodes", FopOpcodes(env));
  o.Set("opcodes", Opcodes(env));
  return o;
}

}  // namespace

#define NYDUS_SET_(name, js) o.Set(js, Num(s.name));

void SetSessionStats(Napi::Object o, const fuse::SessionStats& s) {
  NYDUS_ABI_SESSION_COUNTERS(NYDUS_SET_)
  NYDUS_ABI_SESSION_GAUGES(NYDUS_SET_) {
    const readpath::ReadStats& r = s.read;
#define NYDUS_SET_READ_(name, js) o.Set(js, Num(r.name));
    NYDUS_ABI_READ_STATS(NYDUS_SET_READ_)
#undef NYDUS_SET_READ_
  }
  o.Set("initialized", s.initialized);
}

void SetFuseDevStats(Napi::Object o, const fusedev::FuseDevStats& s) {
  NYDUS_ABI_FUSEDEV_STATS(NYDUS_SET_)
  o.Set("closed", s.closed);
}

void SetVirtioStats(Napi::Object o, const vhost::BackendStats& s) {
  NYDUS_ABI_VIRTIO_STATS(NYDUS_SET_)
}

void SetFopStats(Napi::Object o, const fuse::FopSnapshot& s) {
  Napi::Env env = o.Env();
  auto array = [&](const uint64_t* v, size_t n) {
    Napi::Array a = Napi::Array::New(env, n);
    for (size_t i = 0; i < n; ++i) a.Set(static_cast<uint32_t>(i), Num(v[i]));
    return a;
  };
  NYDUS_ABI_FOP_COUNTERS(NYDUS_SET_)
#define NYDUS_SET_ARRAY_(name, js, n) o.Set(js, array(s.name, abi::k##n));
  NYDUS_ABI_FOP_ARRAYS(NYDUS_SET_ARRAY_)
#undef NYDUS_SET_ARRAY_
}

#undef NYDUS_SET_

void RegisterAbi(Napi::Env env, Napi::Object exports) {
  exports.Set("abiInfo", Napi::Function::New(env, AbiInfo, "abiInfo"));
}

}  // namespace nydus::binding
