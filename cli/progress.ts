/**
 * A one-line progress bar on stderr, hand-written (no dependency for forty
 * lines). Virtual time is not wall time, so the caller reports the
 * completed fraction of the work; the bar redraws at most ten times per
 * wall-clock second, and only on a terminal — piped stderr stays clean.
 * The wall clock here decides when to draw, never what is simulated.
 */
import { performance } from "node:perf_hooks";

export class ProgressBar {
  private last = -Infinity;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly label: string,
    private readonly enabled: boolean = stream.isTTY === true,
  ) {}

  update(fraction: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.last < 100 && fraction < 1) return;
    this.last = now;
    const width = 30;
    const f = Math.max(0, Math.min(1, fraction));
    const full = Math.round(f * width);
    this.stream.write(`\r${this.label} [${"#".repeat(full)}${"-".repeat(width - full)}] ${(f * 100).toFixed(0).padStart(3)}%`);
    this.drawn = true;
  }

  /** Clears the line so results start on a clean one. */
  done(): void {
    if (this.drawn) this.stream.write("\r\x1b[K");
    this.drawn = false;
  }
}
