import { z } from "zod";
import { describeIssues } from "../validation.js";
import { VmcpEventSchema, type VmcpEvent, type VmcpEventType } from "./vmcp-events.js";

/*
 * The reading side of the events (docs/contract.md, "Evolution"). Writers validate with the
 * strict VmcpEventSchema; a vMCP reads with this, so that a worker a version ahead — one more
 * optional field, one more event type — does not make it drop events it understands.
 */

type Tolerant<O> = O extends z.ZodObject<infer Shape> ? z.ZodObject<Shape, z.core.$strip> : never;
type TolerantAll<T extends readonly unknown[]> = { [K in keyof T]: Tolerant<T[K]> };

/**
 * {@link VmcpEventSchema} with each event object turned from strict to stripping: fields this
 * reader does not know are left out of the result instead of failing the event. Everything it does
 * know is checked as strictly as the writers check it. Derived from the writers' objects, so it
 * covers every event type they do. Only the top level is turned: an event that one day nests an
 * object must make that object stripping here too.
 */
export const VmcpEventReaderSchema = z.discriminatedUnion(
  "type",
  // `.strip()` keeps each object's shape and only changes what happens to unknown keys; the map
  // loses the tuple type that discriminatedUnion needs, hence the assertion.
  VmcpEventSchema.options.map((o) => o.strip()) as unknown as TolerantAll<typeof VmcpEventSchema.options>,
);

const KNOWN_TYPES: ReadonlySet<string> = new Set<VmcpEventType>(VmcpEventSchema.options.map((o) => o.shape.type.value));

/** What a vMCP makes of one event it read. */
export type VmcpEventRead =
  /** An event of a type this reader knows, its unknown fields left out. */
  | { readonly kind: "event"; readonly event: VmcpEvent }
  /** An event of a type this reader does not know (a newer writer's): skip it; it is not an error. */
  | { readonly kind: "unknown_type"; readonly type: string }
  /** Not an event, or an event of a known type that breaks its schema: an error. `detail` names the fields. */
  | { readonly kind: "invalid"; readonly detail: string };

/** Reads one event (a job's data, or the parsed JSON of an event-stream entry) the tolerant way. */
export function readVmcpEvent(data: unknown): VmcpEventRead {
  if (typeof data === "object" && data !== null && !Array.isArray(data)) {
    const type: unknown = (data as Record<string, unknown>)["type"];
    if (typeof type === "string" && !KNOWN_TYPES.has(type)) return { kind: "unknown_type", type };
  }
  const parsed = VmcpEventReaderSchema.safeParse(data);
  if (!parsed.success) return { kind: "invalid", detail: describeIssues(parsed.error.issues.slice(0, 3), { noun: "field", root: "event" }).join("; ") };
  return { kind: "event", event: parsed.data };
}
