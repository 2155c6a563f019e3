import { useRef, useState } from "react";
import { RequestEvidenceUpload } from "../documents";
import type { ErrorCode } from "../gql/graphql";
import type { UserErrorLike } from "../lib/errors";
import { intentKey } from "../lib/format";
import { useSignedIn } from "../lib/session";
import { ErrorList } from "./ErrorList";

/** The sha256 of `bytes` in hex, as `requestEvidenceUpload` takes it (the server refuses bytes
 * that do not match it: INTEGRITY_CHECK_FAILED). */
export async function sha256Hex(bytes: ArrayBuffer): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The typed errors of a refused PUT (`{"errors": [{code, message, field}]}`), or its status. */
async function refusedUpload(answer: Response): Promise<Array<UserErrorLike | string>> {
  try {
    const body = (await answer.json()) as { errors?: Array<{ code: ErrorCode; message?: string; field?: string | null }> };
    if (body.errors?.length) return body.errors.map((e) => ({ code: e.code, message: e.message ?? "", field: e.field ?? null }));
  } catch {
    // not JSON: say what HTTP said
  }
  return [`The upload was refused (HTTP ${answer.status}).`];
}

/** Attach a file to an item as evidence: ask for an upload URL (with the file's sha256), then
 * PUT the raw bytes there (docs/collaboration.md). Each refusal is shown in words. */
export function AttachEvidence({ itemId, onDone }: { itemId: string; onDone: () => void }) {
  const { connections } = useSignedIn();
  const input = useRef<HTMLInputElement>(null);
  const [description, setDescription] = useState("");
  const [errors, setErrors] = useState<Array<UserErrorLike | string>>([]);
  const [busy, setBusy] = useState(false);

  const attach = async (file: File) => {
    const bytes = await file.arrayBuffer();
    const asked = await connections.http
      .mutation(RequestEvidenceUpload, {
        input: {
          itemId,
          fileName: file.name,
          contentType: file.type || "application/octet-stream",
          size: bytes.byteLength,
          sha256: await sha256Hex(bytes),
          description: description.trim() || null,
          guards: { idempotencyKey: intentKey() },
        },
      })
      .toPromise();
    const payload = asked.data?.requestEvidenceUpload;
    if (!payload) return setErrors([asked.error?.message ?? "No answer from the server."]);
    if (!payload.upload) return setErrors([...payload.errors]);
    const { url, method, headers } = payload.upload;
    const answer = await fetch(url, {
      method,
      headers: Object.fromEntries(headers.map((h) => [h.name, h.value])),
      body: bytes,
    });
    if (!answer.ok) return setErrors(await refusedUpload(answer));
    setDescription("");
    if (input.current) input.current.value = "";
    onDone();
  };

  return (
    <form
      className="attach"
      data-testid="attach-evidence"
      onSubmit={async (e) => {
        e.preventDefault();
        const file = input.current?.files?.[0];
        if (!file) return setErrors(["Choose a file to attach."]);
        setBusy(true);
        setErrors([]);
        try {
          await attach(file);
        } catch (error) {
          setErrors([`The file could not be uploaded: ${String(error)}`]);
        } finally {
          setBusy(false);
        }
      }}
    >
      <input type="file" aria-label="Evidence file" ref={input} />
      <input aria-label="Evidence description" placeholder="What it shows (optional)" value={description} onChange={(e) => setDescription(e.target.value)} />
      <button type="submit" disabled={busy}>Attach evidence</button>
      <ErrorList errors={errors} />
    </form>
  );
}
