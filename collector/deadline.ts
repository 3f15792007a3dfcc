/** What withinMs gives when the time ran out first. */
export const TIMED_OUT: unique symbol = Symbol("timed out");

/**
 * The work's result, or TIMED_OUT when it has not settled within `ms`; a rejection is passed on.
 * The timer never outlives the race, so a finished race keeps no process alive.
 */
export async function withinMs<T>(work: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
