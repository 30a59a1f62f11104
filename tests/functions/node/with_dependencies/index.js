// A dependency from package.json, installed from the lock by the build; devDependencies are not.
const camelCase = require("camelcase");

exports.handler = async () => {
  let devDependency = "absent";
  try {
    require.resolve("left-pad");
    devDependency = "present";
  } catch {}
  return { camel: camelCase("from-the-lock"), version: require("camelcase/package.json").version, devDependency };
};
