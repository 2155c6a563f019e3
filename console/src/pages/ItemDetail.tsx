import { useCallback, useEffect, useState } from "react";
import { AttachEvidence } from "../components/AttachEvidence";
import { Diagram } from "../components/Diagram";
import { ErrorList } from "../components/ErrorList";
import { HeldStep } from "../components/HeldStep";
import { StepActions, useMutationRunner } from "../components/StepActions";
import { AddComment, ApproveAll, CancelItem, ItemDetailQuery, ItemEventsSubscription, ResubmitItem } from "../documents";
import type { ItemDetailQuery as Detail, ItemEventsSubscription as ItemEventMessage } from "../gql/graphql";
import { intentKey, when, words } from "../lib/format";
import { subscribeResumable } from "../lib/live";
import { useSignedIn } from "../lib/session";


const NOT_READABLE =
  "No such item, or you may not read it (a step reassigned away from you takes the item with it).";

function Json({ value }: { value: unknown }) {
  return <pre className="json">{JSON.stringify(value, null, 2)}</pre>;
}

/** One item: its steps with their decisions and actions, the step graph, comments, evidence and
 * the audit trail; `itemEvents` announces every later change. */
export function ItemDetail({ id }: { id: string }) {
  const { connections, session } = useSignedIn();
  const [data, setData] = useState<Detail | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  // Changes committed since the shown snapshot: announced, not applied, so that a form a
  // reviewer is filling in never changes under them; "Reload" (or their own action) applies them.
  const [changes, setChanges] = useState(0);

  const load = useCallback(async () => {
    const result = await connections.http.query(ItemDetailQuery, { id }).toPromise();
    if (result.error || !result.data) {
      // An item the caller may not read (any more) is NOT_FOUND for its comments and evidence.
      const gone = result.error?.graphQLErrors.some((e) => e.extensions?.code === "NOT_FOUND");
      setProblem(gone ? NOT_READABLE : (result.error?.message ?? "The item could not be loaded."));
      return;
    }
    setProblem(null);
    setData(result.data);
    setChanges(0);
  }, [connections, id]);

  useEffect(() => {
    void load();
  }, [load]);

  const node = data?.item;
  const cursor = node?.__typename === "WorkflowItem" ? (node.eventCursor ?? null) : null;
  useEffect(() => {
    // Every change after the snapshot shown, resumed across reconnects (docs/realtime.md).
    if (!cursor) return;
    return subscribeResumable<ItemEventMessage["itemEvents"]>(
      connections.ws,
      ItemEventsSubscription,
      "itemEvents",
      { itemId: id },
      cursor,
      (message) => message.__typename === "ItemEvent" && setChanges((n) => n + 1),
    ).stop;
  }, [connections, id, cursor]);

  const refresh = () => void load();
  const { run, errors, busy } = useMutationRunner(refresh);
  const commenting = useMutationRunner(refresh);
  const [comment, setComment] = useState("");
  const [itemReason, setItemReason] = useState("");

  if (problem) return <ErrorList errors={[problem]} />;
  if (!data) return <p>Loading…</p>;
  const item = data.item;
  if (!item || item.__typename !== "WorkflowItem") return <ErrorList errors={[NOT_READABLE]} />;
  return (
    <article data-testid="item" data-state={item.state}>
      <h1>{item.title}</h1>
      {changes > 0 && (
        <p className="changed" role="status" data-testid="item-changed">
          This item changed since it was loaded ({changes} {changes === 1 ? "change" : "changes"}).{" "}
          <button onClick={() => void load()}>Reload</button>
        </p>
      )}
      <p className="meta">
        <span data-testid="item-state">{words(item.state)}</span> · {words(item.kind)} · risk {words(item.risk)} · priority{" "}
        {item.priority} · {item.template.name} v{item.template.version} · requested by {item.requester.displayName} on{" "}
        {when(item.createdAt)}
      </p>
      {item.summary && <p className="summary">{item.summary}</p>}
      <Diagram text={item.diagram} />
      <h2>Payload</h2>
      <Json value={item.payload} />
      <h2>Steps</h2>
      {item.steps.map((step) => (
        <section key={step.id} className={`step step-${step.stepState.toLowerCase()}`} data-testid={`step-${step.key}`}>
          <h3>
            {step.name} <span className="state">{words(step.stepState)}</span>
          </h3>
          <p className="meta">
            {words(step.stepKind)} · risk {words(step.risk)}
            {step.declaredRisk ? ` (declared ${words(step.declaredRisk)})` : ""} · needs {step.needed} · due {when(step.dueAt)}
            {step.claimant ? ` · claimed by ${step.claimant.displayName}` : ""}
            {step.sensitive ? " · four-eyes" : ""}
          </p>
          <p className="meta">
            Assignees: {[...step.assignees.users, ...step.assignees.groups.map((g) => `group ${g}`), ...step.assignees.roles.map((r) => `role ${r}`)].join(", ") || "—"}
          </p>
          {step.seats.some((seat) => seat.delegate) && (
            <p className="meta" data-testid={`seats-${step.key}`}>
              Seats:{" "}
              {step.seats
                .map((seat) => {
                  const who = seat.holder ?? (seat.group ? `group ${seat.group}` : seat.role ? `role ${seat.role}` : "open");
                  return seat.delegate ? `${who} (delegated to ${seat.delegate})` : who;
                })
                .join(", ")}
            </p>
          )}
          {step.action && (
            <div className="plan">
              <p>
                Action <code>{step.action}</code>
                {step.expectedOutcome ? ` — ${step.expectedOutcome}` : ""}
              </p>
              <Json value={step.params} />
              {step.paramsDiff.length > 0 && (
                <ul className="diff">
                  {step.paramsDiff.map((change) => (
                    <li key={change.key}>
                      {change.key}: {JSON.stringify(change.before)} → {JSON.stringify(change.after)}
                    </li>
                  ))}
                </ul>
              )}
            </div>
          )}
          {step.decisions.length > 0 && (
            <ul className="decisions">
              {step.decisions.map((decision, i) => (
                <li key={i}>
                  {decision.actor.displayName}: {words(decision.outcome)} {when(decision.createdAt)}
                  {decision.reason ? ` — “${decision.reason}”` : ""}
                </li>
              ))}
            </ul>
          )}
          {step.stepState === "ACTIVE" && <StepActions step={step} onDone={refresh} />}
          {step.stepState === "HELD" && <HeldStep step={step} onDone={refresh} />}
        </section>
      ))}
      {item.requester.userId === session.user && ["PENDING", "CHANGES_REQUESTED"].includes(item.state) && (
        <textarea
          aria-label="Reason for this request"
          placeholder="Reason (required to cancel)"
          value={itemReason}
          onChange={(e) => setItemReason(e.target.value)}
        />
      )}
      <div className="buttons" data-testid="item-actions">
        {item.kind === "PLAN" && item.state === "PENDING" && (
          <button
            disabled={busy}
            onClick={() => run(ApproveAll, { input: { itemId: item.id, reason: null, guards: { idempotencyKey: intentKey(), expectedVersion: item.version } } }, (d) => d.approveAll)}
          >
            Approve all open steps
          </button>
        )}
        {item.requester.userId === session.user && item.state === "CHANGES_REQUESTED" && (
          <button
            disabled={busy}
            onClick={() => run(ResubmitItem, { input: { itemId: item.id, reason: itemReason || null, guards: { idempotencyKey: intentKey(), expectedVersion: item.version } } }, (d) => d.resubmitItem)}
          >
            Resubmit
          </button>
        )}
        {item.requester.userId === session.user && ["PENDING", "CHANGES_REQUESTED"].includes(item.state) && (
          <button
            disabled={busy}
            onClick={() => run(CancelItem, { input: { itemId: item.id, reason: itemReason || null, guards: { idempotencyKey: intentKey(), expectedVersion: item.version } } }, (d) => d.cancelItem)}
          >
            Cancel this request
          </button>
        )}
      </div>
      <ErrorList errors={errors} />
      <h2>Comments</h2>
      <ul className="comments" data-testid="comments">
        {data.comments.edges.map(({ node }) => (
          <li key={node.id}>
            <strong>{node.author.displayName}</strong> {when(node.createdAt)}: {node.deleted ? <em>deleted</em> : node.body}
          </li>
        ))}
      </ul>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (await commenting.run(AddComment, { input: { itemId: item.id, body: comment, guards: { idempotencyKey: intentKey() } } }, (d) => d.addComment)) setComment("");
        }}
      >
        <textarea aria-label="Comment" placeholder="Comment (@user mentions notify)" value={comment} onChange={(e) => setComment(e.target.value)} />
        <button type="submit" disabled={commenting.busy}>Add comment</button>
      </form>
      <ErrorList errors={commenting.errors} />
      <h2>Evidence</h2>
      <ul data-testid="evidence">
        {data.evidence.map((file) => (
          <li key={file.id}>
            {file.downloadUrl ? <a href={file.downloadUrl}>{file.name}</a> : file.name} ({file.contentType}, {file.size} bytes, sha256{" "}
            <code>{file.sha256.slice(0, 12)}…</code>) by {file.uploader.displayName} {when(file.createdAt)}
            {file.description ? ` — ${file.description}` : ""}
          </li>
        ))}
        {!data.evidence.length && <li>None.</li>}
      </ul>
      <AttachEvidence itemId={item.id} onDone={refresh} />
      <h2>Audit trail</h2>
      <table className="audit" data-testid="audit">
        <thead>
          <tr><th>#</th><th>When</th><th>Action</th><th>By</th><th>Reason</th></tr>
        </thead>
        <tbody>
          {item.auditEvents.nodes.map((event) => (
            <tr key={event.seq}>
              <td>{event.seq}</td><td>{when(event.occurredAt)}</td><td>{event.action}</td><td>{event.actorId}</td><td>{event.reason ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </article>
  );
}
