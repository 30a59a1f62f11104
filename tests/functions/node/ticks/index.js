// A CommonJS function whose module scope runs a 10 ms interval from INIT on: the work freezing must stop.

let ticks = 0;
const startedAt = Date.now();
setInterval(() => {
  ticks += 1;
}, 10);

exports.handler = async (event) => {
  if (event?.busyMs) {
    // Time spent inside an invocation: the environment is thawed and the interval runs.
    await new Promise((resolve) => setTimeout(resolve, event.busyMs));
  }
  return { ticks, pid: process.pid, aliveMs: Date.now() - startedAt };
};
