// A Node.js function (an ES module) with one action per behaviour the tests look at.

class ValidationError extends Error {
  constructor(message) {
    super(message);
    this.name = "ValidationError";
  }
}

export const handler = async (event, context) => {
  const action = event?.action ?? "echo";
  switch (action) {
    case "echo":
      console.log(`echo for ${context.awsRequestId}`);
      return event;
    case "context":
      return {
        awsRequestId: context.awsRequestId,
        functionName: context.functionName,
        functionVersion: context.functionVersion,
        invokedFunctionArn: context.invokedFunctionArn,
        memoryLimitInMB: context.memoryLimitInMB,
        remainingMs: context.getRemainingTimeInMillis(),
        logGroupName: context.logGroupName,
        logStreamName: context.logStreamName,
        clientContext: context.clientContext?.custom ?? null,
      };
    case "env":
      return { ...process.env };
    case "throw":
      throw new ValidationError(`bad input: ${event.detail}`);
    case "sleep":
      // A handler that outlives its timeout.
      await new Promise((resolve) => setTimeout(resolve, event.ms));
      return "slept";
    case "exit":
      console.log("exiting now");
      process.exit(event.status ?? 3);
      break;
    case "pid":
      return process.pid;
    default:
      throw new Error(`unknown action ${action}`);
  }
};

// The callback style: the third argument answers the invocation.
export function callbackHandler(event, context, callback) {
  if (event?.fail) {
    callback(new Error(`callback failed: ${event.fail}`));
    return;
  }
  setImmediate(() => callback(null, { via: "callback", requestId: context.awsRequestId, event }));
}
