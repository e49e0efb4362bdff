/** The fixed seed of the fuzz quick run in `npm test`: the same inputs on every machine. */
export const QUICK_SEED = 20_250_808;
