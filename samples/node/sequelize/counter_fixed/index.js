// The counter fixed: an invocation leaves nothing pending when it answers. The slow timer's work belongs to the
// invocation that started it, so the handler cancels the timer before it calls back; nothing of one invocation
// runs in the next, under its request id, however long the environment stays frozen. Work that must happen
// later (a refresh every 10 minutes) is checked against the clock at the start of an invocation instead, and done
// there, inside the invocation that pays for it.

let counter = 0;
const SLOW_TIMEOUT_MS = Number(process.env.SLOW_TIMEOUT_MS || 1000);

exports.handler = function (event, context, callback) {
  const now = Date.now();

  context.callbackWaitsForEmptyEventLoop = false;

  const slow = setTimeout(() => {
    console.log('Slow timeout invoked. Request id:', context.awsRequestId, '| Elapsed ms:', Date.now() - now);
    counter++;
  }, SLOW_TIMEOUT_MS);

  setTimeout(() => {
    console.log('Fast timeout invoked. Request id:', context.awsRequestId, '| Elapsed ms:', Date.now() - now);
    counter++;
    clearTimeout(slow); // the invocation ends here: its pending work ends with it
    callback(null, counter);
  }, 500);
};
