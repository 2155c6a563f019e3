import { useState } from "react";
import { ResolveHeldStep } from "../documents";
import type { HoldOption, StepFieldsFragment } from "../gql/graphql";
import { intentKey, when } from "../lib/format";
import { ErrorList } from "./ErrorList";
import { useMutationRunner } from "./StepActions";

/** What each choice on a held step does, in words. */
export const HOLD_WORDS: Record<HoldOption, string> = {
  RETRY: "Review the failed steps again",
  SKIP: "Skip this step",
  PROVIDE: "Provide the value by hand",
  CANCEL: "Cancel the whole request",
};

/** A step held by an `ask_user` dependency: why, since when, and the requester's choice
 * (`resolveHeldStep`); a refused choice's typed errors in words. */
export function HeldStep({ step, onDone }: { step: StepFieldsFragment; onDone: () => void }) {
  const hold = step.hold;
  const { run, errors, busy } = useMutationRunner(onDone);
  const [option, setOption] = useState<HoldOption | null>(null);
  const [reason, setReason] = useState("");
  const [value, setValue] = useState("{}");
  const [valueError, setValueError] = useState<string | null>(null);
  if (!hold) return null;
  const resolve = () => {
    if (!option) return setValueError("Choose what happens to this step.");
    let parsed: unknown = null;
    if (option === "PROVIDE") {
      try {
        parsed = JSON.parse(value);
      } catch (e) {
        return setValueError(`The value is not JSON: ${String(e)}`);
      }
    }
    setValueError(null);
    void run(
      ResolveHeldStep,
      { input: { stepId: step.id, option, reason, value: parsed, guards: { idempotencyKey: intentKey() } } },
      (d) => d.resolveHeldStep,
    );
  };
  return (
    <div className="hold" data-testid={`hold-${step.key}`}>
      <p>
        Held since {when(hold.since)}: {hold.upstreams.join(", ")} did not succeed. Choose what happens to this step.
      </p>
      <fieldset>
        <legend>What happens to {step.name}</legend>
        {hold.options.map((choice) => (
          <label key={choice}>
            <input type="radio" name={`hold-${step.id}`} value={choice} checked={option === choice} onChange={() => setOption(choice)} />
            {HOLD_WORDS[choice]}
          </label>
        ))}
      </fieldset>
      {option === "PROVIDE" && (
        <textarea aria-label={`Value for ${step.key}`} value={value} onChange={(e) => setValue(e.target.value)} rows={4} />
      )}
      <textarea
        aria-label={`Reason for resolving ${step.key}`}
        placeholder="Why (required)"
        value={reason}
        onChange={(e) => setReason(e.target.value)}
      />
      <div className="buttons">
        <button disabled={busy} onClick={resolve}>Resolve held step</button>
      </div>
      {valueError && <ErrorList errors={[valueError]} />}
      <ErrorList errors={errors} />
    </div>
  );
}
