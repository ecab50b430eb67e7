/**
 * CLI layer: the command lines of the two executables, compatible with upstream's flags.
 * - `nydusd` (nydusd.ts): a flag table (nydusd-flags.ts) read by a fast parser on the start path
 *   (nydusd-fast-args.ts) and by yargs for --help and unusual spellings (nydusd-args.ts), then
 *   validated into DaemonOptions (nydusd-options.ts); `--version` text in version.ts.
 * - `nydus-image` (nydus-image.ts): one module per subcommand (create, inspect, check, export)
 *   over shared parsing and output helpers (nydus-image-common.ts).
 * - run.ts maps what a command throws to the exit status (2 usage/configuration/not supported
 *   yet, 1 runtime failure) and prints the reason as one line.
 *
 * Neighbours: bin/ loads nydusd.ts or nydus-image.ts and run.ts directly — there is no barrel
 * here on purpose, because importing every command would load yargs on nydusd's start path.
 * config/ loads configuration files; daemon/ runs the daemon from DaemonOptions; rafs/ (reader,
 * builder, export) does nydus-image's work; util/ errors, logging and st_mode bits.
 */
export {};
