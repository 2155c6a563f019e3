import { useEffect, useMemo, useState } from "react";
import { Client, fetchExchange, type CombinedError } from "urql";
import { ErrorList } from "../components/ErrorList";
import { ConfirmDecisionLink, DecisionLinkQuery } from "../documents";
import type { DecisionLinkQuery as Preview, ErrorCode } from "../gql/graphql";
import type { UserErrorLike } from "../lib/errors";
import { intentKey, when, words } from "../lib/format";

const VERB = { APPROVE: "Approve", REJECT: "Reject" } as const;
const DONE = { APPROVE: "approved", REJECT: "rejected" } as const;

/** A request-level error (`errors[].extensions.code`) as a typed error, when it has a code. */
function refusal(error: CombinedError): UserErrorLike | string {
  const first = error.graphQLErrors[0];
  const code = first?.extensions?.code as ErrorCode | undefined;
  return code ? { code, message: first.message, field: null } : error.message;
}

/**
 * The confirmation page of a decision link (`/console/decide?token=…`, where `GET /decide/<token>`
 * sends the browser when the API serves the console). Opening it decides nothing: it shows what
 * the link would decide (`decisionLink`), and only the button confirms (`confirmDecisionLink`),
 * as the person the link names. No sign-in: the link's token is the credential.
 */
export function Decide({ token }: { token: string }) {
  const client = useMemo(
    () => new Client({ url: "/graphql", exchanges: [fetchExchange], requestPolicy: "network-only" }),
    [],
  );
  const [preview, setPreview] = useState<Preview["decisionLink"] | null>(null);
  const [problems, setProblems] = useState<Array<UserErrorLike | string>>([]);
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<{ itemState: string; stepState: string } | null>(null);
  const key = useMemo(intentKey, [token]); // one intent per page: a retried click replays it

  useEffect(() => {
    if (!token) {
      setProblems([{ code: "LINK_INVALID", message: "", field: null }]);
      return;
    }
    void client
      .query(DecisionLinkQuery, { token })
      .toPromise()
      .then((result) => {
        if (result.data) setPreview(result.data.decisionLink);
        else setProblems([result.error ? refusal(result.error) : "No answer from the server."]);
      });
  }, [client, token]);

  const confirm = async () => {
    setBusy(true);
    setProblems([]);
    try {
      const input = { token, reason: reason.trim() || null, guards: { idempotencyKey: key } };
      const result = await client.mutation(ConfirmDecisionLink, { input }).toPromise();
      const payload = result.data?.confirmDecisionLink;
      if (!payload) return setProblems([result.error ? refusal(result.error) : "No answer from the server."]);
      if (payload.errors.length) return setProblems([...payload.errors]);
      setDone({ itemState: payload.itemState ?? "", stepState: payload.stepState ?? "" });
    } finally {
      setBusy(false);
    }
  };

  const verb = preview ? VERB[preview.outcome] : "Decide";
  let state: string;
  if (!preview) state = problems.length ? "refused" : "loading";
  else if (done) state = "decided";
  else if (preview.used) state = "used";
  else if (preview.expired) state = "expired";
  else if (!preview.usable) state = "closed";
  else state = "open";
  return (
    <main>
      <section className="decide" data-testid="decide" data-state={state}>
        <h1>{done ? `You ${DONE[preview!.outcome]} the step` : `${verb} this step?`}</h1>
        {preview && (
          <dl>
            <dt>Item</dt>
            <dd data-testid="decide-item">{preview.itemTitle} <small>({words(preview.itemState)})</small></dd>
            <dt>Step</dt>
            <dd data-testid="decide-step">{preview.stepName} <small>({words(done?.stepState ?? preview.stepState)})</small></dd>
            <dt>Decision</dt>
            <dd>{verb}</dd>
            <dt>For</dt>
            <dd>{preview.recipientName ?? preview.recipientId}</dd>
            <dt>Link valid until</dt>
            <dd>{when(preview.expiresAt)}</dd>
          </dl>
        )}
        {state === "used" && <ErrorList errors={[{ code: "LINK_USED", message: "", field: null }]} />}
        {state === "expired" && <ErrorList errors={[{ code: "LINK_EXPIRED", message: "", field: null }]} />}
        {state === "closed" && <ErrorList errors={["This step is no longer open: nothing is left to decide with this link."]} />}
        {state === "open" && (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void confirm();
            }}
          >
            <label>
              Reason{preview!.reasonRequired ? " (required)" : ""}
              <textarea aria-label="Reason" value={reason} required={preview!.reasonRequired} maxLength={2000} rows={4} onChange={(e) => setReason(e.target.value)} />
            </label>
            <p>
              <button type="submit" disabled={busy}>{verb}</button>
            </p>
            <p><small>Nothing is decided until you press the button.</small></p>
          </form>
        )}
        {done && (
          <p data-testid="decide-done">
            {preview!.stepName} of {preview!.itemTitle} is now {words(done.stepState)}; the item is {words(done.itemState)}.
          </p>
        )}
        <ErrorList errors={problems} />
      </section>
    </main>
  );
}
