import type { ZodError } from 'zod';

/** The issues of a failed validation as `[{path, message}]`, the `details` of an INVALID_REQUEST error. */
export function zodDetails(error: ZodError): Array<{ path: string; message: string }> {
  return error.issues.slice(0, 10).map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}
