import { describeError, type UserErrorLike } from "../lib/errors";

/** Typed user errors in words (role=alert, so assistive technology announces them). */
export function ErrorList({ errors }: { errors: ReadonlyArray<UserErrorLike | string> }) {
  if (!errors.length) return null;
  return (
    <div role="alert" className="errors">
      {errors.map((error, i) => (
        <p key={i} data-code={typeof error === "string" ? undefined : error.code}>
          {typeof error === "string" ? error : describeError(error)}
        </p>
      ))}
    </div>
  );
}
