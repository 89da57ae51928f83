import { describe, expect, it } from "vitest";
import { catchUpFraction, overdueAfterMs, planCatchUp, type CatchUpInput } from "../src/tick/keepalive-job.js";

const I = 20_000;
/** A tick scheduled at 100 s, started and planned at `now`; the pair last pinged one interval before its tick. */
const input = (now: number, over: Partial<CatchUpInput> = {}): CatchUpInput => ({
  scheduledAt: 100_000,
  startedAt: now,
  now,
  intervalMs: I,
  sessionTtlMs: undefined,
  timeoutMs: 2_000,
  aliveAt: 100_000 - I,
  fraction: 0.5,
  ...over,
});
/** Offset of the slot of draw `u` in a window `w`. */
const slot = (w: number, u: number) => Math.floor(w * u);

describe("catch-up spread of overdue ticks", () => {
  it("a tick started within a hundredth of the interval (at least 250 ms) of its time is not overdue", () => {
    expect(overdueAfterMs(20_000)).toBe(250);
    expect(overdueAfterMs(300_000)).toBe(3_000);
    expect(planCatchUp(input(100_250))).toEqual({ kind: "now" });
    expect(planCatchUp(input(100_251)).kind).not.toBe("now");
  });

  it("an overdue tick waits until its slot when that comes before the pair's next regular tick", () => {
    // 10 s late; the next regular tick is at 120 s; slot at 110 s + 0.2 × 20 s = 114 s.
    expect(planCatchUp(input(110_000, { fraction: 0.2 }))).toEqual({ kind: "defer", at: 110_000 + slot(I, 0.2) });
  });

  it("when the pair's next regular tick comes before its slot, the overdue tick is dropped", () => {
    // Slot at 110 s + 0.6 × 20 s = 122 s, after the regular tick at 120 s.
    expect(planCatchUp(input(110_000, { fraction: 0.6 }))).toEqual({ kind: "superseded", nextTickAt: 120_000 });
    // More than an interval late: the next regular slot is the first one after the start (140 s).
    expect(planCatchUp(input(130_000, { fraction: 0.99, aliveAt: 120_000 }))).toEqual({ kind: "superseded", nextTickAt: 140_000 });
  });

  it("never past the session TTL: the window ends at the last sign of life + TTL − timeout − 1 s", () => {
    // TTL 30 s, alive at 80 s: deadline 80 + 30 − 2 − 1 = 107 s; at 104 s the window is 3 s.
    expect(planCatchUp(input(104_000, { sessionTtlMs: 30_000, fraction: 0.5 }))).toEqual({ kind: "defer", at: 104_000 + slot(3_000, 0.5) });
    // At 106.8 s only 0.2 s are left (less than the overdue threshold): call at once.
    expect(planCatchUp(input(106_800, { sessionTtlMs: 30_000 }))).toEqual({ kind: "now" });
  });

  it("never later than two intervals after the last sign of life: a pair past it (a long outage) is called at once, as is one never alive", () => {
    // Alive at 90 s: deadline 130 s; the slot (110 + 0.9 × 20 = 128 s) comes after the next regular tick (120 s), which is before the deadline.
    expect(planCatchUp(input(110_000, { aliveAt: 90_000, fraction: 0.9 }))).toEqual({ kind: "superseded", nextTickAt: 120_000 });
    // An outage longer than an interval: last alive at 80 s, picked up at 125 s (deadline 120 s passed).
    expect(planCatchUp(input(125_000, { aliveAt: 80_000 }))).toEqual({ kind: "now" });
    expect(planCatchUp(input(110_000, { aliveAt: 0 }))).toEqual({ kind: "now" });
  });

  it("a cascade stops: the regular tick that superseded an overdue one is called at once when it is late too", () => {
    // The tick of 100 s was superseded by the one of 120 s (pair last alive at 80 s); that one starts 2 s late.
    expect(planCatchUp(input(122_000, { scheduledAt: 120_000, aliveAt: 80_000, fraction: 0.9 }))).toEqual({ kind: "now" });
    // Had the overdue tick been called at its slot (alive at 114 s), the late regular tick is spread again, before 154 s.
    const plan = planCatchUp(input(122_000, { scheduledAt: 120_000, aliveAt: 114_000, fraction: 0.5 }));
    expect(plan).toEqual({ kind: "defer", at: 132_000 });
  });

  it("draws are uniform per pair and tick, stable, and differ between ticks", () => {
    const perTenth = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const f = catchUpFraction(`s${i}`, "pw", 100_000);
      expect(f).toBeGreaterThanOrEqual(0);
      expect(f).toBeLessThan(1);
      perTenth[Math.floor(f * 10)]!++;
    }
    expect(Math.max(...perTenth)).toBeLessThan(1_150);
    expect(Math.min(...perTenth)).toBeGreaterThan(850);
    expect(catchUpFraction("s1", "pw", 100_000)).toBe(catchUpFraction("s1", "pw", 100_000));
    expect(catchUpFraction("s1", "pw", 100_000)).not.toBe(catchUpFraction("s1", "pw", 120_000));
  });

  it("10,000 pairs, 10 s outage at a 20 s interval: catch-ups at a flat rate until the first regular ticks of the overdue pairs, then fewer; each pair called by its slot or its next tick", () => {
    // Ticks at phases spread over the interval; the outage covered [100 s, 110 s); workers back at 110 s.
    const back = 110_000;
    const perSecond = new Array<number>(20).fill(0);
    let overdue = 0;
    let superseded = 0;
    for (let i = 0; i < 10_000; i++) {
      const scheduledAt = 100_000 + Math.floor((i / 10_000) * I);
      if (scheduledAt >= back || back - scheduledAt <= overdueAfterMs(I)) continue;
      overdue++;
      const plan = planCatchUp(input(back, { scheduledAt, aliveAt: scheduledAt - I, fraction: catchUpFraction(`p${i}`, "pw", scheduledAt) }));
      if (plan.kind === "superseded") {
        superseded++;
        // The regular tick that serves it is within one interval of the return.
        expect(plan.nextTickAt - back).toBeLessThanOrEqual(I);
        continue;
      }
      expect(plan.kind).toBe("defer");
      const at = (plan as { at: number }).at;
      expect(at).toBeLessThan(scheduledAt + I);
      perSecond[Math.floor((at - back) / 1_000)]!++;
    }
    // The outage's ticks, less the last 250 ms of them.
    expect(overdue).toBeGreaterThan(4_800);
    // Flat over the first 10 s (no overdue pair has its regular tick before 120 s): overdue ÷ 20 s each.
    for (const n of perSecond.slice(0, 10)) {
      expect(n).toBeGreaterThan(0.8 * (overdue / 20));
      expect(n).toBeLessThan(1.2 * (overdue / 20));
    }
    // Then fewer and fewer, as more overdue pairs meet their regular tick first.
    expect(perSecond[15]!).toBeLessThan(0.7 * (overdue / 20));
    expect(perSecond[19]!).toBeLessThan(0.2 * (overdue / 20));
    expect(superseded).toBeGreaterThan(0.2 * overdue);
  });
});
