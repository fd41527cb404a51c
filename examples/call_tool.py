"""Calls a tool through a Switchyard endpoint with the MCP Python SDK and prints the result.

    SWITCHYARD_KEY=sy_... python3 examples/call_tool.py URL TOOL '{"arg": "value"}' [--mode legacy]
--mode auto (default) speaks MCP 2026-07-28 where the server offers it; legacy forces the
initialize handshake of earlier versions. Needs: pip install 'mcp==2.3.0'
"""

import argparse
import asyncio
import json
import os

import httpx2
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("tool", nargs="?")
    parser.add_argument("arguments", nargs="?", default="{}")
    parser.add_argument("--mode", default="auto")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {os.environ['SWITCHYARD_KEY']}"}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(args.url, http_client=http), mode=args.mode) as client:
            tools = await client.list_tools()
            print(json.dumps({"protocol": client.protocol_version, "tools": sorted(t.name for t in tools.tools)}))
            if args.tool:
                result = await client.call_tool(args.tool, json.loads(args.arguments))
                text = "".join(c.text for c in result.content if getattr(c, "type", "") == "text")
                print(json.dumps({"is_error": bool(result.is_error), "text": text}))


asyncio.run(main())
