"""The libp2p peer daemon (trio + py-libp2p). No asyncio, no Textual."""
