// Logging for the C++ core.
//
// The core never formats a message unless the level is enabled (style rule 10): NYDUS_LOG checks
// the atomic threshold first. Records go to one process-wide sink; the Node binding installs a sink
// that forwards them to the TypeScript logger, tests and fuzzers leave the default (stderr, or
// nothing under fuzzing).
#pragma once

#include <atomic>
#include <cstdarg>
#include <cstdint>

namespace nydus {

enum class LogLevel : int { kTrace = 0, kDebug = 1, kInfo = 2, kWarn = 3, kError = 4, kOff = 5 };

// Receives a formatted record. Called from any thread; must be thread-safe and must not block for
// long (it runs on queue worker threads).
using LogSink = void (*)(LogLevel level, const char* module, const char* message);

void SetLogSink(LogSink sink);
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
bool LogEnabled(LogLevel level);

// Formats with printf semantics and hands the record to the sink.
void LogWrite(LogLevel level, const char* module, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

}  // namespace nydus

#define NYDUS_LOG(level, module, ...)                    \
  do {                                                   \
    if (::nydus::LogEnabled(level)) {                    \
      ::nydus::LogWrite((level), (module), __VA_ARGS__); \
    }                                                    \
  } while (0)

#define NLOG_TRACE(module, ...) NYDUS_LOG(::nydus::LogLevel::kTrace, module, __VA_ARGS__)
#define NLOG_DEBUG(module, ...) NYDUS_LOG(::nydus::LogLevel::kDebug, module, __VA_ARGS__)
#define NLOG_INFO(module, ...) NYDUS_LOG(::nydus::LogLevel::kInfo, module, __VA_ARGS__)
#define NLOG_WARN(module, ...) NYDUS_LOG(::nydus::LogLevel::kWarn, module, __VA_ARGS__)
#define NLOG_ERROR(module, ...) NYDUS_LOG(::nydus::LogLevel::kError, module, __VA_ARGS__)
