// The Sequelize guide's counter ("Using sequelize in AWS Lambda"), as written there: the handler calls back after
// 500 ms without waiting for the event loop to empty, so its 1,000 ms timer is still pending when the invocation
// ends. Frozen, that timer fires at the start of the next invocation, with the previous request id.

let counter = 0;

exports.handler = function (event, context, callback) {
  const now = Date.now();

  context.callbackWaitsForEmptyEventLoop = false;

  setTimeout(() => {
    console.log('Slow timeout invoked. Request id:', context.awsRequestId, '| Elapsed ms:', Date.now() - now);
    counter++;
  }, 1000);

  setTimeout(() => {
    console.log('Fast timeout invoked. Request id:', context.awsRequestId, '| Elapsed ms:', Date.now() - now);
    counter++;
    callback(null, counter);
  }, 500);
};
