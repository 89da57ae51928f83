import type { z } from "zod";
import type { KeepaliveConfigSchema } from "./schema.js";

/** `T` with every property and array element readonly, all the way down (what `deepFreeze` makes). */
export type DeepReadonly<T> = T extends readonly (infer E)[] ? readonly DeepReadonly<E>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

/**
 * The validated, frozen configuration every process runs on. Built only by `loadConfig`/`parseConfig`.
 * Its shape is the output of the schema's transform (`toKeepaliveConfig` in schema.ts), so a key
 * added there is typed here without being written twice.
 */
export type KeepaliveConfig = DeepReadonly<
  z.output<typeof KeepaliveConfigSchema> & {
    /** Where the config came from, for logs (`file.yaml`, `<inline>`). */
    source: string;
  }
>;

export type BackendConfig = KeepaliveConfig["backends"][number];

/** How a backend is kept alive. `tool` pings first and falls back (see docs/contract.md). */
export type KeepaliveMethod = BackendConfig["method"];
