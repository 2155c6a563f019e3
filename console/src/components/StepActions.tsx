import { useState } from "react";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import {
  ApproveStep,
  ClaimStep,
  DelegateStep,
  ModifyStepParams,
  OverrideStep,
  ReassignStep,
  RejectStep,
  RequestChanges,
  UnclaimStep,
} from "../documents";
import type { StepFieldsFragment } from "../gql/graphql";
import type { UserErrorLike } from "../lib/errors";
import { intentKey } from "../lib/format";
import { useSignedIn } from "../lib/session";
import { ErrorList } from "./ErrorList";

type Payload = { errors: ReadonlyArray<UserErrorLike> };

/** Run one mutation; its typed errors, or a transport failure, as a list to show. */
export function useMutationRunner(onDone: () => void) {
  const { connections } = useSignedIn();
  const [errors, setErrors] = useState<Array<Payload["errors"][number] | string>>([]);
  const [busy, setBusy] = useState(false);
  const run = async <D, V extends Record<string, unknown>>(
    document: TypedDocumentNode<D, V>,
    variables: V,
    pick: (data: D) => Payload,
  ): Promise<boolean> => {
    setBusy(true);
    setErrors([]);
    try {
      const result = await connections.http.mutation(document, variables).toPromise();
      if (result.error || !result.data) {
        setErrors([result.error?.message ?? "No answer from the server."]);
        return false;
      }
      const payload = pick(result.data);
      setErrors([...payload.errors]);
      if (!payload.errors.length) onDone();
      return payload.errors.length === 0;
    } finally {
      setBusy(false);
    }
  };
  return { run, errors, busy };
}

/** What a reviewer can do on one step: claim, decide, reassign, delegate, edit plan params. */
export function StepActions({ step, onDone }: { step: StepFieldsFragment; onDone: () => void }) {
  const { session } = useSignedIn();
  const { run, errors, busy } = useMutationRunner(onDone);
  const [reason, setReason] = useState("");
  const [reassignTo, setReassignTo] = useState("");
  const [delegateTo, setDelegateTo] = useState("");
  const [params, setParams] = useState(() => JSON.stringify(step.params, null, 2));
  const [paramsError, setParamsError] = useState<string | null>(null);
  const decide = { stepId: step.id, reason: reason || null, guards: { idempotencyKey: intentKey() } };
  const guarded = { idempotencyKey: intentKey(), expectedVersion: null };
  const mine = step.claimedBy === session.user;
  return (
    <div className="actions" data-testid={`actions-${step.key}`}>
      <textarea
        aria-label={`Reason for ${step.name}`}
        placeholder="Reason (required to reject, request changes or override)"
        value={reason}
        onChange={(e) => setReason(e.target.value)}
      />
      <div className="buttons">
        <button disabled={busy} onClick={() => run(ApproveStep, { input: decide }, (d) => d.approveStep)}>Approve</button>
        <button disabled={busy} onClick={() => run(RejectStep, { input: decide }, (d) => d.rejectStep)}>Reject</button>
        <button disabled={busy} onClick={() => run(RequestChanges, { input: decide }, (d) => d.requestChanges)}>
          Request changes
        </button>
        <button
          disabled={busy}
          title="Needs an override role and a strong justification (the reason); a sensitive step needs a second person's override to confirm"
          onClick={() => run(OverrideStep, { input: { stepId: step.id, justification: reason, guards: { idempotencyKey: intentKey() } } }, (d) => d.overrideStep)}
        >
          Override
        </button>
        {mine ? (
          <button disabled={busy} onClick={() => run(UnclaimStep, { input: { stepId: step.id, reason: reason || null, guards: guarded } }, (d) => d.unclaimStep)}>
            Release claim
          </button>
        ) : (
          <button disabled={busy} onClick={() => run(ClaimStep, { input: { stepId: step.id, reason: reason || null, guards: guarded } }, (d) => d.claimStep)}>
            Claim
          </button>
        )}
      </div>
      <div className="buttons">
        <input aria-label="Reassign to users" placeholder="users, comma separated" value={reassignTo} onChange={(e) => setReassignTo(e.target.value)} />
        <button
          disabled={busy}
          onClick={() =>
            run(
              ReassignStep,
              { input: { stepId: step.id, users: reassignTo.split(",").map((u) => u.trim()).filter(Boolean), groups: [], roles: [], reason, guards: guarded } },
              (d) => d.reassignStep,
            )
          }
        >
          Reassign
        </button>
        <input aria-label="Delegate to" placeholder="user" value={delegateTo} onChange={(e) => setDelegateTo(e.target.value)} />
        <button disabled={busy} onClick={() => run(DelegateStep, { input: { stepId: step.id, delegateTo, reason, guards: guarded } }, (d) => d.delegateStep)}>
          Delegate
        </button>
      </div>
      {step.action && (
        <div className="params">
          <label>
            Parameters of <code>{step.action}</code> (JSON)
            <textarea aria-label={`Parameters of ${step.key}`} value={params} onChange={(e) => setParams(e.target.value)} rows={6} />
          </label>
          <button
            disabled={busy}
            onClick={() => {
              let parsed: unknown;
              try {
                parsed = JSON.parse(params);
              } catch (e) {
                setParamsError(`The parameters are not JSON: ${String(e)}`);
                return;
              }
              setParamsError(null);
              void run(ModifyStepParams, { input: { stepId: step.id, params: parsed, reason, guards: guarded } }, (d) => d.modifyStepParams);
            }}
          >
            Save parameters
          </button>
          {paramsError && <ErrorList errors={[paramsError]} />}
        </div>
      )}
      <ErrorList errors={errors} />
    </div>
  );
}
