"""Testing tools: a real UCWA 2.0 simulator (aiohttp.web) and a pytest plugin."""
