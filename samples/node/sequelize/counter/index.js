// The Sequelize guide's counter ("Using sequelize in AWS Lambda"), as written there: the handler calls back after
// 500 ms without waiting for the event loop to empty, so its 1,000 ms timer is still pending when the invocation
// ends. Frozen, that timer fires at the start of the next invocation, with the previous request id.
// SLOW_TIMEOUT_MS sets the slow timer (the guide's 1,000 ms by default); production code has such timers of
// minutes (a cache refresh, a metrics flush), which virtual time reproduces without waiting for them.

let counter = 0;
const SLOW_TIMEOUT_MS = Number(process.env.SLOW_TIMEOUT_MS || 1000);

exports.handler = function (event, context, callback) {
  const now = Date.now();

  context.callbackWaitsForEmptyEventLoop = false;

  setTimeout(() => {
    console.log('Slow timeout invoked. Request id:', context.awsRequestId, '| Elapsed ms:', Date.now() - now);
    counter++;
  }, SLOW_TIMEOUT_MS);

  setTimeout(() => {
    console.log('Fast timeout invoked. Request id:', context.awsRequestId, '| Elapsed ms:', Date.now() - now);
    counter++;
    callback(null, counter);
  }, 500);
};
