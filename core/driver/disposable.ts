/**
 * Disposables collected in stores and torn down in reverse order of
 * creation (the xterm.js / VS Code pattern). tsyringe does not dispose
 * child containers nor values registered with `registerInstance`, so every
 * VM and every bound device keeps its own store.
 */
export interface Disposable {
  dispose(): void | Promise<void>;
}

export function toDisposable(fn: () => void | Promise<void>): Disposable {
  return { dispose: fn };
}

export class DisposableStore implements Disposable {
  private readonly items: Disposable[] = [];
  private disposed = false;

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Adds `d` and returns it. Adding to a disposed store disposes `d` at once. */
  add<T extends Disposable>(d: T): T {
    if (this.disposed) {
      void d.dispose();
      return d;
    }
    this.items.push(d);
    return d;
  }

  /**
   * Disposes everything, last added first, awaiting each. An error in one
   * does not stop the others; the first error is rethrown at the end.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    let first: unknown;
    let failed = false;
    while (this.items.length > 0) {
      const d = this.items.pop() as Disposable;
      try {
        await d.dispose();
      } catch (e) {
        if (!failed) {
          failed = true;
          first = e;
        }
      }
    }
    if (failed) throw first;
  }
}
