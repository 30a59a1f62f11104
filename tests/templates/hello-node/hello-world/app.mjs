// An API Gateway proxy response, as the hello-world function of `sam init` returns it.
export const lambdaHandler = async (event, context) => {
  return {
    statusCode: 200,
    body: JSON.stringify({ message: "hello world", function: context.functionName }),
  };
};
