// An Express app as users deploy one behind API Gateway and function URLs: wrapped by serverless-http.
import express from "express";
import serverless from "serverless-http";

const app = express();
let requests = 0;

app.use(express.raw({ type: "application/octet-stream", limit: "6mb" }));

app.get("/items/:id", (req, res) => {
  requests += 1;
  res.cookie("seen", req.params.id);
  res.cookie("visits", String(requests));
  res.json({ id: req.params.id, query: req.query, cookie: req.headers.cookie ?? null, requests });
});

app.post("/reverse", (req, res) => {
  res.type("application/octet-stream").send(Buffer.from(req.body).reverse());
});

export const handler = serverless(app, { binary: ["application/octet-stream"] });
