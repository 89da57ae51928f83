import { fileURLToPath } from "node:url";
import { defineConfig, type ViteUserConfig } from "vitest/config";

/** What a package may change of the preset. */
export interface PresetOptions {
  /** Per-test timeout (ms). @defaultValue 30_000 */
  readonly testTimeout?: number;
  /** Per-hook timeout (ms). @defaultValue 30_000 */
  readonly hookTimeout?: number;
  /** Test file globs. @defaultValue ["test/**\/*.test.ts"] */
  readonly include?: string[];
  /** Run test files one at a time (suites that start real processes). @defaultValue true */
  readonly fileParallelism?: boolean;
  /** Start the run's one embedded redis-server (and provide `redisUrl`). @defaultValue true */
  readonly redis?: boolean;
}

/**
 * The one vitest configuration every package uses: one real redis-server per run (started by
 * the global setup, handed to tests as `inject("redisUrl")`; each test takes its own key prefix).
 */
export function vitestPreset(options: PresetOptions = {}): ViteUserConfig {
  const globalSetup = fileURLToPath(new URL("./global-setup.js", import.meta.url));
  return defineConfig({
    test: {
      include: options.include ?? ["test/**/*.test.ts"],
      exclude: ["**/node_modules/**", "**/dist/**"],
      ...(options.redis === false ? {} : { globalSetup: [globalSetup] }),
      ...(options.fileParallelism === undefined ? {} : { fileParallelism: options.fileParallelism }),
      testTimeout: options.testTimeout ?? 30_000,
      hookTimeout: options.hookTimeout ?? 30_000,
    },
  });
}
