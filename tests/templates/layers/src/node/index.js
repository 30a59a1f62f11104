const { greet } = require("greetnode");
const { where } = require("greetnode20");

exports.handler = async () => ({ greet: greet("layers"), where });
