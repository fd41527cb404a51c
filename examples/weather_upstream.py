"""A small MCP server to try Switchyard with: two tools over Streamable HTTP.

    python3 examples/weather_upstream.py --port 9000    # serves http://127.0.0.1:9000/mcp
Needs the MCP Python SDK: pip install 'mcp==2.3.0'
"""

import argparse

from mcp.server.mcpserver import MCPServer

server = MCPServer("weather")


@server.tool()
def forecast(city: str) -> str:
    """Tomorrow's forecast for a city."""
    return f"Sunny in {city}, 21 degrees"


@server.tool()
def add(a: float, b: float) -> float:
    """Adds two numbers."""
    return a + b


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    server.run("streamable-http", host="127.0.0.1", port=args.port)
