// Typed user errors in words: the API returns `errors { code message field problems }` on every
// mutation; the console switches on `code` (an enum generated from schema.graphql: a code the
// schema drops fails `tsc`; a code it adds gets the general words until this table has its own,
// which a unit test asks for).
import type { ErrorCode } from "../gql/graphql";

export const ERROR_WORDS: Partial<Record<ErrorCode, string>> = {
  UNAUTHENTICATED: "You are not signed in, or your token expired. Sign in again.",
  FORBIDDEN: "You may not do this.",
  NOT_FOUND: "It does not exist, or you may not see it.",
  INVALID_INPUT: "Something in the form is not valid.",
  ILLEGAL_TRANSITION: "This is not possible in the current state.",
  VERSION_CONFLICT: "Someone changed this item since you loaded it. Reload and try again.",
  IDEMPOTENCY_KEY_REUSED: "This request was already used for something else.",
  LIMIT_EXCEEDED: "A configured limit would be exceeded.",
  SEPARATION_OF_DUTIES: "The same person may not fill both roles (four-eyes rule).",
  JUSTIFICATION_REQUIRED: "Give a (longer) reason.",
  TEMPLATE_INVALID: "The template has problems.",
  TEMPLATE_NOT_PUBLISHED: "No published template with that key.",
  TEMPLATE_IMMUTABLE: "A published template version cannot change.",
  DEPENDENCY_UNMET: "A step this one depends on has not succeeded yet.",
  ALREADY_DECIDED: "This step was already decided.",
  ALREADY_CLAIMED: "Somebody else claimed this step.",
  CONTENT_TYPE_NOT_ALLOWED: "Files of this type are not accepted.",
  INTEGRITY_CHECK_FAILED: "The file does not match its checksum.",
  UPLOAD_EXPIRED: "The upload link expired; try again.",
  UPLOAD_IN_PROGRESS: "Another upload is running.",
  RATE_LIMITED: "Too many requests; wait a moment and try again.",
  TIMEOUT: "The server took too long; nothing was changed.",
  UNKNOWN_TENANT: "Your organisation (tenant) does not exist yet.",
  LINK_INVALID: "This decision link is not valid (mistyped, or not made by this server).",
  LINK_EXPIRED: "This decision link has expired; decide in the console instead.",
  LINK_USED: "This decision link was already used.",
  EXPORT_EXPIRED: "This audit export was removed by retention; request it again.",
};

export interface UserErrorLike {
  code: ErrorCode;
  message: string;
  field?: string | null;
  problems?: ReadonlyArray<{ path?: string | null; message: string }> | null;
}

/** One sentence per error: the words for its code, then the server's own message. */
export function describeError(error: UserErrorLike): string {
  const words = ERROR_WORDS[error.code] ?? `The request was refused (${error.code}).`;
  const where = error.field ? ` (${error.field})` : "";
  const detail = error.message && error.message !== words ? ` ${error.message}` : "";
  const problems = (error.problems ?? []).map((p) => ` ${p.path ? `${p.path}: ` : ""}${p.message}`);
  return `${words}${where}${detail}${problems.join(";")}`;
}
