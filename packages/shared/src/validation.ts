import { z } from "zod";
import { ID_PATTERN, ID_RULE } from "./names.js";

/** A session, backend or replica id: the one schema every message, event and config key uses. */
export const IdSchema = z.string().regex(ID_PATTERN, `must be ${ID_RULE}`);

/** `backends[0].url`: the path of an issue as a reader writes it; `root` for the document itself. */
export function formatIssuePath(path: readonly PropertyKey[], root: string): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || root;
}

export interface IssueFormat {
  /** What the document calls its keys: `key` (config file) or `field` (messages). */
  readonly noun: "key" | "field";
  /** How the document itself is named when an issue has no path: `(root)`, `message`. */
  readonly root: string;
  /** Names a key by where its value came from (an env override), when it did not come from the document. */
  readonly labelOf?: (path: string) => string;
  /** Quote unknown key names (`"surprise"`). @defaultValue false */
  readonly quoteUnknown?: boolean;
}

/**
 * One line per zod issue, naming the key: the config loader and the message parser both answer
 * a rejection with these, so an operator and a vMCP developer read the same kind of message.
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[], format: IssueFormat): string[] {
  return issues.map((issue) => {
    const path = formatIssuePath(issue.path, format.root);
    const label = format.labelOf?.(path) ?? path;
    if (issue.code === "unrecognized_keys") {
      const names = issue.keys.map((k) => (format.quoteUnknown ? JSON.stringify(k) : k)).join(", ");
      return `${path === format.root ? "" : `${path}: `}unknown ${format.noun}${issue.keys.length > 1 ? "s" : ""} ${names}`;
    }
    if (issue.code === "invalid_type") {
      return `${label}: ${issue.message.replace(/^Invalid input: /, "").replace(/, received undefined$/, " (missing)")}`;
    }
    return `${label}: ${issue.message}`;
  });
}
