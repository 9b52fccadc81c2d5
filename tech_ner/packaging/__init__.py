"""The installable pipeline package: meta, CPU precision choice, and the runtime shipped inside it."""
