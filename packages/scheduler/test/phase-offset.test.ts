import { describe, expect, it } from "vitest";
import { phaseOffset, phaseSlotMs } from "../src/scheduling/phase-offset.js";

describe("phaseOffset", () => {
  it("spreads 10,000 pair ids over the interval: no tenth holds more than 1.2× its share", () => {
    const every = 300_000;
    const tenths = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const offset = phaseOffset(`session-${i}`, i % 3 === 0 ? "playwright" : "db", every);
      tenths[Math.floor((offset / every) * 10)]!++;
    }
    const share = 10_000 / 10;
    for (const count of tenths) expect(count).toBeLessThanOrEqual(1.2 * share);
    expect(Math.min(...tenths)).toBeGreaterThanOrEqual(0.8 * share);
  });

  it("puts pairs on slot starts (+1 ms) of at most 50 ms, so a worker fetches the ticks of one slot together; every slot is used", () => {
    expect([2_000, 10_000, 20_000, 300_000].map(phaseSlotMs)).toEqual([10, 50, 50, 50]);
    const every = 20_000;
    const used = new Set<number>();
    for (let i = 0; i < 10_000; i++) {
      const o = phaseOffset(`session-${i}`, "db", every);
      expect((o - 1) % 50).toBe(0);
      used.add(o);
    }
    expect(used.size).toBe(Math.floor((every - 1) / 50));
  });

  it("is never 0, stays inside the interval, and is stable for the same pair", () => {
    for (const every of [2, 1_000, 5_000, 300_000]) {
      for (let i = 0; i < 2_000; i++) {
        const o = phaseOffset(`s${i}`, "b", every);
        expect(o).toBeGreaterThanOrEqual(1);
        expect(o).toBeLessThan(every);
      }
    }
    expect(phaseOffset("s1", "b1", 60_000)).toBe(phaseOffset("s1", "b1", 60_000));
    expect(phaseOffset("s1", "b1", 60_000)).not.toBe(phaseOffset("s1", "b2", 60_000));
  });
});
