import { useState } from "react";
import { DecideSteps } from "../documents";
import type { DecideStepsMutation, DecisionChoice } from "../gql/graphql";
import type { InboxRow } from "../lib/inbox";
import { intentKey, words } from "../lib/format";
import { useSignedIn } from "../lib/session";
import { ErrorList } from "./ErrorList";

type Result = DecideStepsMutation["decideSteps"]["results"][number];

/** The open steps of the picked rows, each a decision of one batch (`decideSteps`): a step the
 * reviewer may not decide is refused on its own, in words, and does not stop the others; the
 * decided rows leave the inbox by its live updates. */
export function BatchDecisions({ rows }: { rows: InboxRow[] }) {
  const { connections } = useSignedIn();
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [results, setResults] = useState<Array<Result & { title: string }>>([]);
  const [errors, setErrors] = useState<Array<DecideStepsMutation["decideSteps"]["errors"][number] | string>>([]);
  const steps = rows.flatMap((row) =>
    row.item.steps.filter((s) => s.stepState === "ACTIVE").map((s) => ({ stepId: s.id, title: row.item.title })),
  );

  const decide = async (outcome: DecisionChoice) => {
    setBusy(true);
    setErrors([]);
    setResults([]);
    try {
      const titles = new Map(steps.map((s) => [s.stepId, s.title]));
      const decisions = steps.map(({ stepId }) => ({ stepId, outcome, reason: reason || null }));
      const answer = await connections.http
        .mutation(DecideSteps, { input: { decisions, guards: { idempotencyKey: intentKey() } } })
        .toPromise();
      if (answer.error || !answer.data) {
        setErrors([answer.error?.message ?? "No answer from the server."]);
        return;
      }
      const payload = answer.data.decideSteps;
      setErrors([...payload.errors]);
      setResults(payload.results.map((r) => ({ ...r, title: titles.get(r.stepId) ?? r.stepId })));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="batch" data-testid="batch">
      <h2>Decide the picked items at once</h2>
      <textarea
        aria-label="Reason for the picked items"
        placeholder="Reason (required to reject)"
        value={reason}
        onChange={(e) => setReason(e.target.value)}
      />
      <div className="buttons">
        <button disabled={busy || !steps.length} onClick={() => void decide("APPROVE")}>
          Approve picked ({steps.length})
        </button>
        <button disabled={busy || !steps.length} onClick={() => void decide("REJECT")}>
          Reject picked ({steps.length})
        </button>
      </div>
      <ErrorList errors={errors} />
      {results.length > 0 && (
        <ul data-testid="batch-results">
          {results.map((result) => {
            const done = result.outcome === "APPROVE" ? "approved" : "rejected";
            return (
              <li key={result.stepId} data-step-id={result.stepId} data-ok={result.errors.length ? "false" : "true"}>
                {result.title}: {result.errors.length ? `not ${done}` : `${done} (now ${words(result.item?.state ?? "")})`}
                <ErrorList errors={result.errors} />
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
