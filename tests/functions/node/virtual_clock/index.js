// The runtime's clocks as a handler sees them, and a 10-minute timer armed during INIT (a pool's idle timer).
let fired = false;
setTimeout(() => { fired = true; }, 600_000);

exports.handler = async (event, context) => ({
  wall_s: Date.now() / 1000,
  monotonic_s: Number(process.hrtime.bigint()) / 1e9,
  remaining_ms: context.getRemainingTimeInMillis(),
  fired,
});
