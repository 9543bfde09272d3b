# One replica of the app: `docker build -t skin-demo . && docker run -p 7860:7860 skin-demo`.
# Serving needs requirements.txt only (LiteRT, no TensorFlow). Running several: docs/scaling.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False

RUN useradd --create-home --uid 1000 app
WORKDIR /home/app/skin

# The dependencies first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY demo.py ./
COPY app/ app/
COPY explain/ explain/
COPY model/ model/
COPY examples/ examples/

USER app
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD python -c "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ['GRADIO_SERVER_PORT'] + '/', timeout=4)"
CMD ["python", "demo.py"]
