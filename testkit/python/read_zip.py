"""Reads a ZIP archive with Python's own zipfile module (a reader that is
not ours) and prints JSON: each entry's name, method, flags and sizes, and,
unless --no-content, its text (null when it is not UTF-8); the manifest's
text always. Every entry's CRC is checked (testzip).

An archive zipfile refuses (one cut short, say) prints {"error": "..."}.
"""

import json
import sys
import zipfile


def main():
    path = sys.argv[1]
    content = "--no-content" not in sys.argv[2:]
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            entries = []
            for info in archive.infolist():
                entry = {
                    "name": info.filename,
                    "method": info.compress_type,
                    "flags": info.flag_bits,
                    "size": info.file_size,
                    "compressed": info.compress_size,
                    "offset": info.header_offset,
                }
                if content or info.filename == "manifest.json":
                    data = archive.read(info)
                    try:
                        entry["text"] = data.decode("utf-8")
                    except UnicodeDecodeError:
                        entry["text"] = None
                entries.append(entry)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        print(json.dumps({"error": str(error)}))
        return
    print(json.dumps({"bad": bad, "entries": entries}))


main()
