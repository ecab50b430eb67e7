{
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=c++17"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc": ["-std=c++20", "-fexceptions", "-Wall", "-Wextra", "-Wshadow", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
    "include_dirs": ["native/core"],
    # libcrypto (SHA-256, codec/digest.cc) is linked by the executables only. The addon leaves
    # those symbols to the process: Node exports its own OpenSSL for addons (and its headers
    # come first on the addon's include path), so a second libcrypto is never loaded beside it.
    "libraries": ["-llz4", "-lzstd", "-lpthread"],
    "defines": ["_GNU_SOURCE", "_FILE_OFFSET_BITS=64"],
    "configurations": {
      "Release": { "cflags_cc": ["-O2", "-g"] },
      "Debug": { "cflags_cc": ["-O0", "-g"] }
    }
  },
  "targets": [
    {
      # The reference BLAKE3 C implementation with its run-time SIMD dispatch, compiled from the
      # path Debian's librust-blake3-dev installs it to (found at configure time; never copied
      # here). On x86-64 the SIMD levels are upstream's unix assembly files.
      "target_name": "blake3",
      "type": "static_library",
      "sources": ["<!@(node scripts/blake3-sources.mjs --gyp-sources)"],
      "defines": ["<!@(node scripts/blake3-sources.mjs --defines)"],
      "include_dirs": ["<!(node scripts/blake3-sources.mjs --dir)"],
      "cflags": ["-O3"],
      "cflags!": ["-Wall", "-Wextra"]
    },
    {
      "target_name": "nydus_core",
      "type": "static_library",
      "dependencies": ["blake3"],
      "include_dirs": ["<!(node scripts/blake3-sources.mjs --dir)"],
      "sources": ["<!@(node scripts/gyp-sources.mjs native/core)"]
    },
    {
      "target_name": "nydus_native",
      "dependencies": ["nydus_core"],
      "sources": ["<!@(node scripts/gyp-sources.mjs native/binding)"],
      "cflags_cc+": ["-isystem", "<!(node -p \"require('path').resolve(require('node-addon-api').include_dir)\")"],
      "defines": ["NAPI_VERSION=9", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"]
    },
    {
      "target_name": "nydus_driver_frontend",
      "type": "static_library",
      "dependencies": ["nydus_core"],
      "include_dirs": ["native"],
      "sources": ["<!@(node scripts/gyp-sources.mjs native/driver/frontend)"]
    },
    {
      "target_name": "nydus_core_tests",
      "type": "executable",
      "dependencies": ["nydus_driver_frontend", "nydus_core"],
      "include_dirs": ["native"],
      "libraries": ["-lcrypto"],
      "sources": ["<!@(node scripts/gyp-sources.mjs native/test)"]
    },
    {
      "target_name": "nydus_vu_driver",
      "type": "executable",
      "dependencies": ["nydus_driver_frontend", "nydus_core"],
      "include_dirs": ["native"],
      "libraries": ["-lcrypto"],
      "sources": ["<!@(node scripts/gyp-sources.mjs native/driver/cli)"]
    },
    {
      "target_name": "nydus_vu_testd",
      "type": "executable",
      "dependencies": ["nydus_core"],
      "include_dirs": ["native"],
      "libraries": ["-lcrypto"],
      "sources": ["<!@(node scripts/gyp-sources.mjs native/driver/testd)"]
    }
  ]
}
