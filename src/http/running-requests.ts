/**
 * REST requests whose body has arrived and whose reply is not yet sent: the server-side work (authentication, the
 * store, the bus) a shutdown waits for before it closes the engines. A request still uploading its body is not
 * counted: closing its connection at the end of the drain leaves nothing half done.
 */
export class RunningRequests {
  private readonly running = new Set<object>();
  private waiters: Array<() => void> = [];

  /** The request's body has arrived (fastify's preValidation). */
  start(request: object): void {
    this.running.add(request);
  }

  /** Its reply is being sent (fastify's onSend, which an error reply and a reply to a closed connection pass too). */
  end(request: object): void {
    if (!this.running.delete(request) || this.running.size > 0) return;
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves once no request is running (at once when none is). */
  settled(): Promise<void> {
    return this.running.size === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}
