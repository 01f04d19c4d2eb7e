#pragma once
// Makes PDF fixtures at test time: text PDFs with QPdfWriter, image-only pages, encrypted copies
// (qpdf), and damaged files.

#include <QFile>
#include <QImage>
#include <QPainter>
#include <QPdfWriter>
#include <QProcess>
#include <QString>

namespace quire::test {

inline void writeTextPdf(const QString& path, int pages, const QString& prefix = "Page") {
    QPdfWriter writer(path);
    writer.setPageSize(QPageSize(QPageSize::A5));
    QPainter p(&writer);
    p.setFont(QFont("DejaVu Sans", 11));
    for (int i = 1; i <= pages; ++i) {
        if (i > 1) writer.newPage();
        p.drawText(QRect(200, 200, 4000, 1500), Qt::TextWordWrap,
                   QString("%1 %2: the keeper lit the lamp at 19:40 and counted ships.").arg(prefix).arg(i));
    }
}

inline void writeImageOnlyPdf(const QString& path, int pages) {
    QPdfWriter writer(path);
    QPainter p(&writer);
    QImage scan(400, 300, QImage::Format_RGB32);
    scan.fill(Qt::white);
    QPainter ip(&scan);
    ip.fillRect(40, 40, 300, 20, Qt::black);  // pixels that look like a line of text
    ip.end();
    for (int i = 0; i < pages; ++i) {
        if (i) writer.newPage();
        p.drawImage(QRect(100, 100, 4000, 3000), scan);
    }
}

inline bool encryptPdf(const QString& in, const QString& out, const QString& password) {
    return QProcess::execute("qpdf", {"--encrypt", password, password + "-owner", "256", "--", in, out}) == 0;
}

}  // namespace quire::test
